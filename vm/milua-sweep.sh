#!/bin/sh
# milua-sweep: a grid of runs of one experiment script, run here, through GNU parallel or as a
# Slurm job array, resumed, watched and collected (man milua-sweep). The code is the milua.sweep
# module of the standard library; this launcher runs it with the milua installed beside it, and
# tells it its own path, which the job commands it writes (for parallel and sbatch) call back.
self=$(readlink -f "$0")
MILUA_SWEEP_SELF=$self
export MILUA_SWEEP_SELF
# -e runs the module's main on the arg table; /dev/null is the (empty) script whose arguments
# "$@" become, as milua(1) lays out arg
exec "$(dirname "$self")/milua" -e 'os.exit(require("milua.sweep").main(arg), true)' /dev/null "$@"
