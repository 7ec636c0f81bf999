"""A pure-Python wheel built by hand in a test's temp dir: no network, no build backend."""
import base64
import hashlib
import os
import zipfile


def make_wheel(directory, name, value, version="0.1"):
    """A pure-Python wheel built by hand (no network, no build backend)."""
    files = {f"{name}/__init__.py": f"VALUE = {value!r}\n",
             f"{name}-{version}.dist-info/METADATA":
                 f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{name}-{version}.dist-info/WHEEL":
                 "Wheel-Version: 1.0\nGenerator: raylite-tests\nRoot-Is-Purelib: true\n"
                 "Tag: py3-none-any\n"}
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()},{len(t.encode())}"
              for p, t in files.items()]
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(
        record + [f"{name}-{version}.dist-info/RECORD,,"]) + "\n"
    out = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(out, "w") as z:
        for p, t in files.items():
            z.writestr(p, t)
    return out
