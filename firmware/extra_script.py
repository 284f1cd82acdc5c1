"""PlatformIO pre-script: wires the per-build inputs the harness passes through the environment.

Generated model sources never go into src/: harness/device/firmware.py writes them to a per-variant cache
directory and names it in KWS_MODEL_DIR, which is compiled here with its own include path.
KWS_EXTRA_SRC_DIRS (os.pathsep-separated) adds more source folders (test stand-ins); a folder that
provides kws_model.h or kws_frontend.h replaces lib/kws_runtime or lib/kws_frontend for this build.
KWS_BUILD_HASH and KWS_BACKEND end up in the firmware so HELLO reports what was built.
"""

import os

Import("env")  # noqa: F821  (SCons injects it)

config = env.GetProjectConfig()  # noqa: F821
section = "env:" + env["PIOENV"]  # noqa: F821
ignored = list(config.get(section, "lib_ignore", []) or [])

backend = os.environ.get("KWS_BACKEND", "aot")
dirs = [d for d in os.environ.get("KWS_EXTRA_SRC_DIRS", "").split(os.pathsep) if d]
model_dir = os.environ.get("KWS_MODEL_DIR")
if model_dir:
    dirs.insert(0, model_dir)
    # The generated sources include kws_model.h; these objects are built with this environment,
    # which does not get the include paths that LDF gives to src/.
    env.Append(CPPPATH=[os.path.join(env.subst("$PROJECT_DIR"), "lib", "kws_runtime")])  # noqa: F821

for i, d in enumerate(dirs):
    if not os.path.isdir(d):
        print(f"Error: source folder {d} (KWS_MODEL_DIR/KWS_EXTRA_SRC_DIRS) does not exist")
        env.Exit(1)  # noqa: F821
    env.Append(CPPPATH=[d])  # noqa: F821
    name = "kws_model" if d == model_dir else f"kws_extra{i}"  # harness/device/firmware.py reads the map by name
    env.BuildSources(os.path.join("$BUILD_DIR", name), d)  # noqa: F821
    if os.path.exists(os.path.join(d, "kws_model.h")) and d != model_dir:
        ignored.append("kws_runtime")
    if os.path.exists(os.path.join(d, "kws_frontend.h")):
        ignored.append("kws_frontend")

if backend == "tflm":  # kws_model_invoke comes from src/backend_tflm.cpp; the AOT kernels go unused
    env.Append(CPPDEFINES=["KWS_BACKEND_TFLM"])  # noqa: F821
else:
    ignored.append("tflite-micro-arduino-examples")
    ignored.append("Arduino_TensorFlowLite")

if ignored:
    config.set(section, "lib_ignore", sorted(set(ignored)))

env.Append(  # noqa: F821
    CPPDEFINES=[
        ("KWS_BUILD_HASH", '\\"%s\\"' % os.environ.get("KWS_BUILD_HASH", "unhashed")),
        ("KWS_BACKEND_NAME", '\\"%s\\"' % backend),
    ]
)
