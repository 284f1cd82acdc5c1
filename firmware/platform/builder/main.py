"""SCons builder of the local dev-platform: compile with arm-none-eabi-* (emulated Cortex-M4F) or
the host gcc (native), both taken from PATH, so the build needs no PlatformIO registry at all.

The board manifest's ``build.toolchain`` picks the tool set; ``upload.maximum_size`` and
``maximum_ram_size`` make PlatformIO print its RAM/Flash lines and fail a build that does not fit.
"""

import os

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()
toolchain = board.get("build.toolchain", "arm-none-eabi")
PLATFORM_DIR = env.PioPlatform().get_dir()

env.Replace(PROGNAME="firmware")
env.Append(CPPDEFINES=[board.get("build.board_define"), ("F_CPU", board.get("build.f_cpu"))])

if toolchain == "arm-none-eabi":
    arch = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    env.Replace(
        AR="arm-none-eabi-gcc-ar",
        AS="arm-none-eabi-as",
        CC="arm-none-eabi-gcc",
        CXX="arm-none-eabi-g++",
        LINK="arm-none-eabi-gcc",  # C-only core: never pull in libstdc++ (not installed)
        GDB="arm-none-eabi-gdb",
        OBJCOPY="arm-none-eabi-objcopy",
        RANLIB="arm-none-eabi-gcc-ranlib",
        SIZETOOL="arm-none-eabi-size",
        ARFLAGS=["rc"],
        PROGSUFFIX=".elf",
        # .text/.rodata/.data count against flash; .data/.bss/.stack against RAM.
        SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
        SIZEPROGREGEXP=r"^(?:\.isr_vector|\.text|\.rodata|\.data|\.ARM\.exidx)\s+(\d+).*",
        SIZEDATAREGEXP=r"^(?:\.data|\.bss|\.stack)\s+(\d+).*",
        SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
        LDSCRIPT_PATH=os.path.join(PLATFORM_DIR, "ldscripts", board.get("build.ldscript")),
    )
    env.Append(
        ASFLAGS=arch,
        # optimisation: [kws] opt_flags of platformio.ini (build_flags), shared with the Nano's env
        CCFLAGS=arch + ["-g", "-Wall"],
        CXXFLAGS=["-fno-rtti", "-fno-exceptions"],
        LINKFLAGS=arch
        + [
            "--specs=nano.specs",
            "--specs=nosys.specs",
            "-nostartfiles",
            "-Wl,--gc-sections",
            "-Wl,-Map,${BUILD_DIR}/firmware.map",
        ],
        LIBS=["c", "m", "gcc"],
    )
elif toolchain == "host":
    env.Replace(
        AR="ar", AS="as", CC="gcc", CXX="g++", LINK="gcc", RANLIB="ranlib", SIZETOOL="size",
        ARFLAGS=["rc"], PROGSUFFIX="",
    )
    env.Append(
        CCFLAGS=["-g", "-Wall"],  # optimisation: [kws] opt_flags (build_flags)
        LIBS=["m"],
    )
else:
    env.Exit(f"error: unknown build.toolchain {toolchain!r} in board {env.subst('$BOARD')}")

target_elf = env.BuildProgram()
target_size = env.Alias("size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size $SOURCE"))
AlwaysBuild(target_size)
Default([target_elf])
