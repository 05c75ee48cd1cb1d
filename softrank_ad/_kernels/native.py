"""Native CPU backend: the C kernels of ``native.c``, built on first use and called via ctypes.

Why C rather than torch: per pair the kernel needs one division and a few multiply-adds
(σ(γ(v_i − v_j)) = E_i / (E_i + E_j) with one exponential per entry, each unordered pair once),
and rows wide enough for σ to saturate are radix-sorted and swept in windows. Long float32 rows
where that would still visit most pairs take a far-field expansion instead (O(n·P), each pair off
by at most 1e-9, below float32 rounding; ``native_farfield.h``), chosen per row by cost. No torch
expression fuses that; see ``native_rows.h`` for the algorithm.

The source is compiled once per machine with the system C compiler (``$CC``, else the one Python
was built with, else ``cc``) into a cache directory (``$SOFTRANK_AD_CACHE``, else
``~/.cache/softrank_ad``), keyed by the source, the compiler and the CPU, so ``-march=native``
code never runs on another CPU. Building takes under a second. A build is checked before it is
cached (loaded in a child process, its SHA-256 written beside it), and a cached library whose
checksum does not match (truncated, emptied, replaced) is rebuilt rather than loaded: a damaged
shared library can crash the process that maps it. Where no compiler works,
:func:`available` turns False, :func:`build_error` says why, and ``softrank_ad.rank`` uses the
torch backends instead.

Rows are split across ``torch.get_num_threads()`` threads. Where torch runs on GNU OpenMP (its
Linux wheels), the library is built with ``-fopenmp`` and links that same runtime, so the kernel's
threads are torch's own OpenMP workers: after any torch op they spin-wait for more work, and a
separate pool would fight them for the cores (a training loop always runs a model before its
loss). Elsewhere the rows are split over a Python thread pool; ctypes releases the GIL during each
call. Every thread has its own O(n) scratch (kept between calls), so the threads share nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import math
import operator
import os
import platform
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

_SOURCES = ("native.c", "native_rows.h", "native_farfield.h")
# -fassociative-math lets the compiler vectorise the sums; unlike -ffast-math it keeps NaN/inf
# semantics and does not link crtfastmath.o, which would set flush-to-zero for the whole process.
_FLAGS = ["-O3", "-fPIC", "-shared", "-fno-math-errno", "-fno-trapping-math", "-fassociative-math", "-fno-signed-zeros"]
# Below this many pairs per call, handing rows to other threads costs more than it saves.
_MIN_PAIRS_PER_THREAD = 1 << 16
# Seconds before a hanging compiler is given up on (its whole process group is killed).
_VERSION_TIMEOUT = 10
_COMPILE_TIMEOUT = 120

_library: ctypes.CDLL | None = None
_error: str | None = None
_pool: ThreadPoolExecutor | None = None
_load_lock = threading.Lock()


def _compiler() -> list[str]:
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


def _cache_dir() -> Path:
    configured = os.environ.get("SOFTRANK_AD_CACHE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "softrank_ad"


def _cpu_identity() -> str:
    """What -march=native depends on: the CPU's feature flags where Linux lists them."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((line for line in info if line.startswith(("flags", "Features"))), "")
    except OSError:
        return platform.processor()


def _cpu_model() -> str:
    """The CPU's model name where Linux lists it (for the record beside the measured scales)."""
    try:
        with open("/proc/cpuinfo") as info:
            line = next((line for line in info if line.startswith("model name")), "")
        return line.partition(":")[2].strip() or platform.processor()
    except OSError:
        return platform.processor()


def _torch_openmp() -> bool:
    """Whether torch runs on GNU OpenMP (libgomp), so a ``-fopenmp`` build shares its workers."""
    if not torch.backends.openmp.is_available():
        return False
    try:
        with open("/proc/self/maps") as maps:
            return any("libgomp" in line for line in maps)
    except OSError:
        return False


def _build_key(compiler: list[str]) -> str:
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SOURCES:
        digest.update((here / name).read_bytes())
    version = _run_command(compiler + ["--version"], _VERSION_TIMEOUT)
    for part in (compiler, _FLAGS, _torch_openmp(), version.stdout, platform.machine(), _cpu_identity()):
        digest.update(repr(part).encode())
    return digest.hexdigest()[:16]


def _run_command(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``command`` in its own process group, all of which is killed on timeout (a compiler
    driver's children would otherwise run on and write their output later)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.communicate()
        raise TimeoutError(f"{shlex.join(command)} did not finish within {timeout:g} s") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify(path: Path) -> None:
    """Raises unless ``path`` is a library with the kernels that loads in a child process (so a
    broken file crashes the child, not this process)."""
    if path.stat().st_size == 0:
        raise RuntimeError("the compiler exited 0 but wrote an empty library")
    probe = f"import ctypes; ctypes.CDLL({str(path)!r}).softrank_forward_f32"
    done = _run_command([sys.executable, "-c", probe], _COMPILE_TIMEOUT)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RuntimeError(f"the built library does not load: {last}")


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _cached(target: Path) -> bool:
    """Whether ``target`` exists and matches the checksum written beside it when it was built."""
    stamp = target.with_name(target.name + ".sha256")
    try:
        return target.exists() and stamp.read_text().strip() == _checksum(target)
    except OSError:
        return False


def _compile(compiler: list[str], target: Path) -> None:
    """Compiles into a temporary file beside ``target``, verifies it, flushes it to disk and
    renames it over ``target``, then writes its checksum beside it: concurrent builds of the same
    key (several processes starting at once) each produce a whole, checked file."""
    source = Path(__file__).parent / "native.c"
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=target.suffix, dir=target.parent)
    os.close(fd)
    errors = []
    try:
        # -march=native where the compiler knows it (Apple clang on arm64 does not); -fopenmp only
        # where torch's own runtime is libgomp, whose workers the kernel then shares.
        openmp = [["-fopenmp"], []] if _torch_openmp() else [[]]
        for extra in ([*omp, *march] for march in (["-march=native"], []) for omp in openmp):
            command = compiler + _FLAGS + extra + [str(source), "-o", partial, "-lm"]
            done = _run_command(command, _COMPILE_TIMEOUT)  # a hang raises: no second try
            if done.returncode == 0:
                _verify(Path(partial))
                os.chmod(partial, 0o755)  # mkstemp's 0600 would shut out users sharing the cache
                with open(partial, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(partial, target)
                stamp = target.with_name(target.name + ".sha256")
                partial_stamp = stamp.with_name(stamp.name + ".tmp")
                _write_durably(partial_stamp, _checksum(target).encode())
                os.replace(partial_stamp, stamp)
                return
            errors.append(f"$ {shlex.join(command)}\n{done.stderr.strip()}")
        raise RuntimeError("\n".join(errors))
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


def _declare(library: ctypes.CDLL) -> None:
    pointer, size, real, count = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double, ctypes.c_int
    for suffix in ("f32", "f64"):
        forward = getattr(library, f"softrank_forward_{suffix}")
        forward.argtypes = [pointer, pointer, pointer, size, size, real, count]
        backward = getattr(library, f"softrank_backward_{suffix}")
        backward.argtypes = [pointer, pointer, pointer, pointer, size, size, real, count]
        method = getattr(library, f"softrank_method_{suffix}")
        method.argtypes = [pointer, size, real, count, size, count, count]
        forward.restype = backward.restype = method.restype = ctypes.c_int
    library.softrank_openmp.restype = ctypes.c_int
    library.softrank_openmp_symbol.restype = ctypes.c_void_p
    library.softrank_target.restype = ctypes.c_char_p
    library.softrank_vector_bytes.restype = ctypes.c_int
    library.softrank_set_farfield.argtypes = [ctypes.c_int]
    library.softrank_set_farfield.restype = None
    library.softrank_set_exact_cost.argtypes = [ctypes.c_int, real]
    library.softrank_set_exact_cost.restype = None
    library.softrank_costs_f32.argtypes = [pointer, size, real, count, count, pointer]
    library.softrank_costs_f32.restype = None


def _load() -> ctypes.CDLL | None:
    """The compiled library, building it on the first call; None (for good) if that fails."""
    global _library, _error
    if _library is not None or _error is not None:
        return _library
    with _load_lock:
        if _library is None and _error is None:
            _library, _error = _build_and_open()
            if _error is not None:  # once per process: a silent 5-20x slowdown would puzzle
                warnings.warn(
                    f"softrank_ad: the native CPU kernels could not be built ({_error.splitlines()[0]}); "
                    "CPU soft ranks use the slower torch backends",
                    RuntimeWarning,
                    stacklevel=4,
                )
    return _library


def _build_and_open() -> tuple[ctypes.CDLL | None, str | None]:
    try:
        compiler = _compiler()
        suffix = ".dll" if sys.platform == "win32" else ".so"
        target = _cache_dir() / f"softrank_native-{_build_key(compiler)}{suffix}"
        if not _cached(target):
            _compile(compiler, target)
        library = ctypes.CDLL(str(target))
        _declare(library)
        _apply_calibration(library, target)
        return library, None
    except Exception as err:  # no compiler, read-only cache, unknown platform: use torch
        return None, f"{type(err).__name__}: {err}"


# -- the cost model, measured on this CPU ---------------------------------------------------------
# The exact sweep and the far-field expansion vectorise differently (divisions against
# double-precision multiply-adds), so which is cheaper for a row depends on the CPU, and the model
# was fitted on one. So the first load on a machine times both paths on one row (n = 1,024,
# γ = 10, on one thread; forward and backward, about 20 ms), scales the exact sweep's modelled
# cost per pair to match, and caches the two scales beside the library, whose key already names
# the CPU. One thread, because the measurement must be steady: on a shared 2-core machine, twelve
# calibrations at n = 512 on the two threads of a one-row call gave forward scales 0.66-0.99,
# and 0.72 sent two row classes to the slower path (up to 1.24x); at n = 1,024 on one thread
# they gave 1.16-1.27, and no class was misjudged (benchmarks/path_choice.py). The threads' own
# costs are modelled apart (SWEEP_SPLIT_GAIN, FARFIELD_SPLIT_GAIN, FARFIELD_ROW).
_CALIBRATION_N = 1024
_CALIBRATION_REPEATS = 21
_CALIBRATION_GAMMA = 10.0
_SCALE_BOUNDS = (0.1, 10.0)  # beyond these a measurement was disturbed, not the CPU different
_scales: dict[str, float] = {"forward": 1.0, "backward": 1.0}  # in use, as last measured or read


_FITTED = {"forward": 1.0, "backward": 1.0}


def _set_scales(library: ctypes.CDLL, scales: dict[str, float]) -> None:
    for deriv, name in enumerate(("forward", "backward")):
        library.softrank_set_exact_cost(deriv, scales[name])


def _time_paths(library: ctypes.CDLL, x: torch.Tensor, backward: bool, threads: int) -> tuple[float, float]:
    """Median seconds of the exact sweep and of the expansion on row ``x`` (the two interleaved so
    a drift in the machine's speed hits both)."""
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    out, order = torch.empty_like(x), torch.empty(x.shape, dtype=torch.int32)
    function = library.softrank_backward_f32 if backward else library.softrank_forward_f32
    samples: dict[int, list[float]] = {0: [], 2: []}  # farfield_mode: never, always
    pointers: list[int | None]
    try:
        if backward:  # with the order an exact forward kept, as soft_rank's backward runs
            library.softrank_set_farfield(0)
            library.softrank_forward_f32(
                x.data_ptr(), order.data_ptr(), out.data_ptr(), 1, _CALIBRATION_N, _CALIBRATION_GAMMA, threads
            )
            pointers = [x.data_ptr(), grad.data_ptr(), order.data_ptr(), out.data_ptr()]
        else:
            pointers = [x.data_ptr(), None, out.data_ptr()]
        for repeat in range(_CALIBRATION_REPEATS + 1):
            for mode in samples:
                library.softrank_set_farfield(mode)
                start = time.perf_counter()
                function(*pointers, 1, _CALIBRATION_N, _CALIBRATION_GAMMA, threads)
                if repeat:  # the first round warms the scratch and the caches
                    samples[mode].append(time.perf_counter() - start)
    finally:
        library.softrank_set_farfield(1)
    exact, expansion = (sorted(samples[m])[len(samples[m]) // 2] for m in (0, 2))
    return exact, expansion


def measure_exact_cost(library: ctypes.CDLL) -> dict[str, float]:
    """The scales that make the model's exact-to-expansion cost ratio on the calibration row equal
    the measured one, for the forward and the backward. Leaves the library on the fitted
    constants (scales 1), against which the model's costs are read."""
    _set_scales(library, _FITTED)
    x = torch.randn(1, _CALIBRATION_N, generator=torch.Generator().manual_seed(0))
    threads = 1
    scales = {}
    for deriv, name in enumerate(("forward", "backward")):
        exact, expansion = _time_paths(library, x, bool(deriv), threads)
        modelled = (ctypes.c_double * 2)()
        library.softrank_costs_f32(x.data_ptr(), _CALIBRATION_N, _CALIBRATION_GAMMA, deriv, threads, modelled)
        scale = (exact / expansion) / (modelled[0] / modelled[1])
        scales[name] = min(max(scale, _SCALE_BOUNDS[0]), _SCALE_BOUNDS[1])
    return scales


def _read_scales(path: Path) -> dict[str, float] | None:
    try:
        saved = json.loads(path.read_text())
        scales = {name: float(saved[name]) for name in ("forward", "backward")}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    low, high = _SCALE_BOUNDS
    return scales if all(math.isfinite(v) and low <= v <= high for v in scales.values()) else None


def _apply_calibration(library: ctypes.CDLL, target: Path) -> None:
    """Sets the scales: from the cache beside ``target``, else measured now and cached (a cache
    that cannot be written only costs the measurement again next time). ``SOFTRANK_AD_CALIBRATE=0``
    keeps the fitted constants (scales 1), and so does a forked child without a cache: GNU OpenMP
    can hang in a child whose parent ran a parallel region, and the timing calls would open one."""
    global _scales
    scales = _FITTED
    if os.environ.get("SOFTRANK_AD_CALIBRATE", "1") != "0":
        path = target.with_name(target.stem + ".costs.json")
        cached = _read_scales(path)
        if cached is not None:
            scales = cached
        elif not _forked:
            scales = measure_exact_cost(library)
            with contextlib.suppress(OSError):
                partial = path.with_name(path.name + f".{os.getpid()}.tmp")
                partial.write_text(json.dumps({**scales, "cpu": _cpu_model()}))
                os.replace(partial, path)
    _set_scales(library, scales)
    _scales = dict(scales)


@contextlib.contextmanager
def exact_cost(*, forward: float, backward: float):
    """Within the block, the exact sweep's cost scales are these (for tests and benchmarks of the
    choice); the measured ones are restored after. Process-wide; not for concurrent use."""
    library = _load()
    if library is None:
        raise RuntimeError(f"the native kernels are not available here: {build_error()}")
    try:
        _set_scales(library, {"forward": forward, "backward": backward})
        yield
    finally:
        _set_scales(library, _scales)


def exact_cost_scales() -> dict[str, float]:
    """The exact sweep's cost scales in use (1: the fitted constants), building the kernels first."""
    _load()
    return dict(_scales)


def uses_openmp() -> bool:
    """Whether the loaded kernels split rows over torch's OpenMP workers (else a Python pool)."""
    library = _load()
    return library is not None and bool(library.softrank_openmp())


METHODS = {0: "dense", 1: "window", 2: "far-field"}


def method(row: torch.Tensor, gamma: float, backward: bool = False, rows: int = 1, sorted: bool = False) -> str:
    """How the kernel sweeps this 1-D row in a call on ``rows`` rows: "dense" (every pair),
    "window" (sorted, saturated pairs counted) or "far-field" (the expansion of
    ``native_farfield.h``, float32 only), chosen per row by comparing their costs (which depend
    on whether the row has threads to itself or shares them with other rows). ``sorted``: a
    backward whose forward kept the row's order (``forward_saving``), so windows need no sort."""
    library = _load()
    row = row.contiguous()
    suffix = "f32" if row.dtype == torch.float32 else "f64"
    function = getattr(library, f"softrank_method_{suffix}")
    threads = _threads(rows, row.numel())
    chosen = function(row.data_ptr(), row.numel(), gamma, int(backward), rows, threads, int(sorted))
    if chosen < 0:
        raise ValueError("the row holds NaN or inf")
    return METHODS[chosen]


@contextlib.contextmanager
def farfield(mode: str):
    """Within the block, float32 rows take the far-field expansion ``"never"``, ``"always"`` or
    (the default) where it is cheaper, ``"auto"``: for tests and benchmarks that compare it with
    the exact sweep on the same input. Process-wide; not for concurrent use."""
    library = _load()
    if library is None:
        raise RuntimeError(f"the native kernels are not available here: {build_error()}")
    modes = ("never", "auto", "always")
    library.softrank_set_farfield(modes.index(mode))
    try:
        yield
    finally:
        library.softrank_set_farfield(modes.index("auto"))


def loaded() -> bool:
    """Whether an earlier call built and loaded the kernels (reads a flag, builds nothing)."""
    return _library is not None


def available() -> bool:
    """Whether the kernels are built (building them on the first call)."""
    return _load() is not None


def build_error() -> str | None:
    """Why the kernels could not be built, or None."""
    _load()
    return _error


def build_target() -> str | None:
    """The instruction sets the loaded kernels were compiled for and their widest vector, e.g.
    ``"avx2 fma avx sse4_2, 32-byte vectors"``; None when they are not built."""
    library = _load()
    if library is None:
        return None
    return f"{library.softrank_target().decode().strip() or 'baseline'}, {library.softrank_vector_bytes()}-byte vectors"


RUNS_ON = "CPU float32/float64 tensors"


def supports(x: torch.Tensor) -> bool:
    """CPU float32 and float64 tensors with rows short enough for int32 column indices."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.shape[-1] < 2**31


def worthwhile(x: torch.Tensor, gamma: float) -> bool:
    """Wherever it runs: it beats every torch backend on CPU at every size measured."""
    return True


_forked = False  # whether this process is a fork of one that may have started OpenMP workers


def _after_fork_in_child() -> None:
    # A forked child (a DataLoader worker) inherits the Python pool object but none of its
    # threads; and GNU OpenMP hangs in a child whose parent ran a parallel region (torch's own
    # ops do too unless the child sets one thread, as DataLoader workers do). The child splits
    # rows over a fresh Python pool instead, each thread running the kernel alone.
    global _pool, _forked
    _pool, _forked = None, True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _threads(rows: int, n: int) -> int:
    """Threads for a call on rows × n: torch's, fewer when the pairs are too few to share out."""
    return max(1, min(torch.get_num_threads(), rows * n * n // (2 * _MIN_PAIRS_PER_THREAD)))


# Bits of the kernels' return value (native.c).
_NO_MEMORY = 1
_NONFINITE = 2
_ORDER_KEPT = 4


def _run(name: str, tensors: list[torch.Tensor | None], gamma: float) -> tuple[torch.Tensor, int]:
    """Calls ``name`` on ``tensors`` (each rows × n, or None for a NULL pointer) with the rows
    split over threads; returns the output and the status bits of all rows. A row holding NaN/inf
    comes back all NaN (``soft_rank`` reads that as its finiteness check)."""
    global _pool
    library = _load()
    if library is None:
        raise RuntimeError(f"the native soft-rank kernels could not be built: {_error}")
    x = tensors[0]
    assert x is not None
    rows, n = x.shape
    out = torch.empty_like(x)
    if rows == 0 or n == 0:
        return out, 0
    function = getattr(library, f"{name}_{'f32' if x.dtype == torch.float32 else 'f64'}")
    threads = _threads(rows, n)
    # Raw addresses, not t[start]: a view costs a microsecond each, and small calls add up to
    # tens of them (soft_rank on a row of a few thousand is ~0.1 ms in all).
    bases = [0 if t is None else t.data_ptr() for t in tensors] + [out.data_ptr()]
    strides = [0 if t is None else n * t.element_size() for t in tensors] + [n * out.element_size()]
    if min(threads, rows) == 1 or (library.softrank_openmp() and not _forked):
        # rows, or one long row, over OpenMP threads (or one thread)
        status = function(*[base or None for base in bases], rows, n, gamma, threads)
    else:  # a Python pool splits the rows; a single row stays on one thread

        def block(start: int, stop: int) -> int:
            pointers = [base + start * stride if base else None for base, stride in zip(bases, strides)]
            return function(*pointers, stop - start, n, gamma, 1)

        threads = min(threads, rows)
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="softrank")
        step = -(-rows // threads)
        others = [_pool.submit(block, start, min(start + step, rows)) for start in range(step, rows, step)]
        first = block(0, step)  # on this thread, while the pool runs the others
        status = functools.reduce(operator.or_, [other.result() for other in others], first)
    if status & _NO_MEMORY:
        raise MemoryError(f"the native soft-rank kernel could not allocate scratch for rows of {n}")
    return out, status


_last_forward = threading.local()  # .ranks: a weak reference to this thread's last finite forward


def _remember(ranks: torch.Tensor, status: int) -> torch.Tensor:
    _last_forward.ranks = None if status & _NONFINITE else weakref.ref(ranks)
    return ranks


def known_finite(ranks: torch.Tensor) -> bool:
    """Whether ``ranks`` (or the tensor it is a view of) is what this thread's last forward
    returned, and that forward found every row finite (the kernel reports it). ``soft_rank`` then
    skips its own finiteness check: a reduction and a read back, 10-20 µs of a small call. A weak
    reference, not an address: a freed output's address may be reused by another tensor."""
    ref = getattr(_last_forward, "ranks", None)
    last = ref() if ref is not None else None
    return last is not None and (ranks is last or ranks._base is last)


def forward(x: torch.Tensor, gamma: float) -> torch.Tensor:
    return _remember(*_run("softrank_forward", [x, None], gamma))


def forward_saving(x: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The ranks, and what ``backward(..., saved=)`` reuses: the order of each row the forward
    sorted (int32, 4 bytes an entry), so that the backward does not sort it again; None when no
    row was sorted (dense and far-field rows)."""
    order = torch.empty(x.shape, dtype=torch.int32)
    ranks, status = _run("softrank_forward", [x, order], gamma)
    return _remember(ranks, status), order if status & _ORDER_KEPT else None


def backward(x: torch.Tensor, grad: torch.Tensor, gamma: float, saved: torch.Tensor | None = None) -> torch.Tensor:
    return _run("softrank_backward", [x, grad, saved], gamma)[0]
