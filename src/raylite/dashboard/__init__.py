"""raylite's light dashboard: a read-only web UI of a running cluster, in its own process.

    raylite dashboard [--address HOST:PORT] [--port 8265] [--host 127.0.0.1 [--allow-remote]]
    raylite start --head --dashboard-port P        (started beside the head, stopped by
                                                    `raylite stop` by the pid it recorded)

    reader.py   the state API's fetch layer (GetState ─► frozen records): the only way
                the dashboard learns anything about the cluster
    history.py  the overview's plots: a bounded ring of samples (the last hour), inline SVG
    metrics.py  /metrics: Prometheus' text of the user's metrics and the cluster's
    auth.py     the one-time login code, the cluster token, session cookies
    html.py     layout, tables, filters, paging, the stylesheet and the small script
    pages.py    overview, jobs, actors, tasks, objects;  logs.py: list, tail, follow
    timeline.py the tasks page's timeline view: spans per worker, one server-drawn SVG
    series.py   the metrics page's plots: a bounded ring of named series (the last hour)
    metrics_page.py  /metrics/view: the cluster's own metrics and the user's, with plots
    server.py   the HTTP server (stdlib ThreadingHTTPServer), routes, the sampler thread
    record.py   <temp>/raylite_dashboard, for `raylite stop`
    __main__.py python -m raylite.dashboard: the process `raylite start` launches

Nothing here is imported by `import raylite`.
"""
