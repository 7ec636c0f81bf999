"""runtime_env beyond env_vars: one piece of code per step, shared by every process (a leaf).

    driver / job client          node daemon                      worker (started for env K)
    ───────────────────          ───────────                      ──────────────────────────
    validate.check (options)
    resolve.Resolver.resolve ──► RequestLease(env) / ActorSpec.runtime_env
      packing.pack (zip, sha)      env_key(env) = K: the scheduler keys workers on K
      KV put "pkg/<sha>"           node_cache.prepare: KV get by sha, unpack,
                                     pip_env.ensure (venv per requirements hash),
                                     spec written to envs/K.json ──► "spawn <id> K"
                                                                  worker.load(K), exec into the
                                                                  venv's python if any, enter():
                                                                  cwd, sys.path; WorkerEnv.ready()
                                                                  runs the setup hook once
    local mode: local.LocalEnvs applies what one process can (sys.path, the hook); refuses pip.
    jobs: job_submission packs the working_dir with packing.pack too.

env_vars are not part of K: they are set per task, as before, so workers are shared
across env_vars. Nothing here is imported by `import raylite`.
"""
