"""The real TensorRT Python API, without a GPU: loading the bindings and a fake derived from them.

`load_real(major)` imports the real `tensorrt_bindings` of one major version (installed with stub
libraries by .ci/setup.d/20-tensorrt-bindings.sh) under the name `trt<major>_real`, so 10.x and
11.x live side by side in one process (their pybind11 types are module-local). Every class,
method, property, enum member and pybind11 signature is the real one; only the C factories are
stubs, so nothing can be built.

`DerivedTrt(real)` is a module that stands in for `tensorrt` and records every use. Its surface
comes from the real module only:
- enums, module constants (`float32`) and the Python helpers of the bindings (`nptype`) are the real
  objects;
- classes that construct without TensorRT's libraries (Dims, Weights, and the interfaces Python
  code subclasses: ILogger, IOutputAllocator, IDebugListener, ...) are the real classes;
- every other class (Builder, INetworkDefinition, IBuilderConfig, OnnxParser, Runtime,
  ICudaEngine, IExecutionContext, ...) becomes a fake class of the same name and hierarchy whose
  instances offer exactly the real class's members. A call binds its arguments against the real
  pybind11 signatures (all overloads, parsed from `__doc__`): arity, keyword names, and types
  (TensorRT classes and enums must be instances of the real class of *this* version, ints, strs,
  bools, sequences). An attribute assignment must hit a real settable property with a value of the
  setter's type. What a call returns is what its annotation says: a fake instance of the returned
  class, or a default, unless a behaviour hook (`on(...)`) supplies it.

Every mismatch raises (AttributeError for a name the class lacks, `ApiMismatch` -- a TypeError --
for arguments) and is kept in `api.violations`, so code that swallows exceptions still fails the
test that checks `api.violations == []`.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BINDINGS = REPO / ".venv" / "trt-bindings"
STUB_LIBS = ("nvinfer", "nvonnxparser", "nvinfer_plugin")
SETUP_HINT = "run `bash .ci/setup` (step .ci/setup.d/20-tensorrt-bindings.sh) to install them"


# --- the real bindings ----------------------------------------------------------------------------

def installed_versions() -> dict[int, tuple[str, Path]]:
    """{major: (version, folder)} as the set-up step recorded them (empty when it has not run)."""
    listing = BINDINGS / "versions.txt"
    if not listing.is_file():
        return {}
    found = {}
    for line in listing.read_text().splitlines():
        major, version, folder = line.split()
        found[int(major)] = (version, BINDINGS / folder)
    return found


_LOADED: dict[int, types.ModuleType] = {}


def load_real(major: int) -> types.ModuleType:
    """The real `tensorrt_bindings` of TensorRT `major`, imported as `trt<major>_real`.

    The stub libraries are preloaded with RTLD_GLOBAL, so the dynamic linker finds the sonames the
    bindings need (libnvinfer.so.<major>, ...) already loaded; LD_LIBRARY_PATH would have to be set
    before the process starts.

    Raises:
        RuntimeError: the set-up step has not installed this version.
    """
    if major in _LOADED:
        return _LOADED[major]
    versions = installed_versions()
    if major not in versions:
        raise RuntimeError(f"the TensorRT {major}.x Python bindings are not in {BINDINGS}; {SETUP_HINT}")
    version, folder = versions[major]
    for lib in STUB_LIBS:
        ctypes.CDLL(str(folder / "stubs" / f"lib{lib}.so.{major}"), mode=ctypes.RTLD_GLOBAL)
    package = folder / "tensorrt_bindings"
    alias = f"trt{major}_real"
    spec = importlib.util.spec_from_file_location(alias, package / "__init__.py",
                                                  submodule_search_locations=[str(package)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[alias] = module
    spec.loader.exec_module(module)
    if module.__version__ != version:
        raise RuntimeError(f"{package} is TensorRT {module.__version__}, expected {version}; {SETUP_HINT}")
    _LOADED[major] = module
    return module


# --- pybind11 signatures ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    name: str
    annotation: str
    has_default: bool
    kind: str  # "positional", "keyword_only", "var_positional", "var_keyword"


@dataclass(frozen=True)
class Signature:
    name: str
    params: tuple[Param, ...]  # without self
    returns: str
    text: str


_OPEN, _CLOSE = "([{<", ")]}>"


def _outside_quotes(text: str, start: int = 0) -> Iterator[tuple[int, int]]:
    """(index, bracket depth after it) of each character of `text` from `start` that is outside
    quotes; "->" does not close a bracket."""
    depth, quote = 0, ""
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
            continue
        if ch in "'\"":
            quote = ch
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE and not (ch == ">" and i > 0 and text[i - 1] == "-"):
            depth -= 1
        yield i, depth


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside brackets and quotes."""
    parts, start = [], 0
    for i, depth in _outside_quotes(text):
        if depth == 0 and i >= start and text[i] not in _OPEN + _CLOSE and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _closing_paren(text: str, start: int) -> int:
    """The index of the bracket that closes the one at `start`."""
    for i, depth in _outside_quotes(text, start):
        if depth == 0 and text[i] in _CLOSE:
            return i
    raise ValueError(f"unbalanced signature: {text!r}")


def parse_signature(line: str, name: str, *, has_self: bool = True) -> Signature:
    """One pybind11 signature line, `name(self: X, a: int, b: Y = <Y.Z: 0>) -> R`."""
    begin = line.index(name + "(") + len(name)
    end = _closing_paren(line, begin)
    inner = line[begin + 1:end]
    rest = line[end + 1:].strip()
    returns = rest[2:].strip() if rest.startswith("->") else "None"
    params, kind = [], "positional"
    for raw in (p for p in _split_top(inner) if p):
        if raw == "*":
            kind = "keyword_only"
            continue
        if raw == "/":
            continue
        if raw.startswith("**"):
            params.append(Param(raw[2:].split(":")[0].strip(), "object", True, "var_keyword"))
            continue
        if raw.startswith("*"):
            params.append(Param(raw[1:].split(":")[0].strip(), "object", True, "var_positional"))
            kind = "keyword_only"
            continue
        head, *default = _split_top(raw, " = ")
        pname, _, annotation = head.partition(":")
        params.append(Param(pname.strip(), annotation.strip() or "object", bool(default), kind))
    if has_self and params and params[0].kind == "positional":
        params = params[1:]
    return Signature(name, tuple(params), returns, line.strip())


def signatures(func: Any, name: str, *, has_self: bool = True) -> list[Signature]:
    """Every overload of a pybind11 function or method, from its `__doc__`."""
    doc = getattr(func, "__doc__", None) or ""
    lines = [ln.strip() for ln in doc.splitlines()]
    if not lines or not lines[0].startswith(name + "("):
        raise ValueError(f"{name}: no pybind11 signature in its __doc__ ({doc[:80]!r})")
    if len(lines) > 1 and lines[1] == "Overloaded function.":
        overloads = [re.sub(r"^\d+\.\s+", "", ln) for ln in lines
                     if re.match(rf"^\d+\.\s+{re.escape(name)}\(", ln)]
        return [parse_signature(ln, name, has_self=has_self) for ln in overloads]
    return [parse_signature(lines[0], name, has_self=has_self)]


def property_signature(prop: property, setter: bool) -> Signature | None:
    """The getter's or setter's signature of a pybind11 property (`(arg0: X, arg1: int) -> None`)."""
    func = prop.fset if setter else prop.fget
    if func is None:
        return None
    doc = (func.__doc__ or "").strip().splitlines()
    if not doc or not doc[0].startswith("("):
        return Signature("", (Param("value", "object", False, "positional"),) if setter else (), "object", "")
    return parse_signature("f" + doc[0], "f")


# --- the derived fake ---------------------------------------------------------------------------------

class ApiMismatch(TypeError):
    """A call or assignment that the real TensorRT bindings would reject."""


@dataclass
class Call:
    """One recorded use: kind is "init", "call", "get" or "set"."""

    cls: str
    member: str
    kind: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    signature: str = ""


Hook = Callable[..., Any]


class DerivedTrt(types.ModuleType):
    """A stand-in `tensorrt` module whose surface is the real bindings' (see the module docstring).

    Args:
        real: the real bindings (`load_real(major)`).
        version: what `__version__` reports (default: the real one).
    """

    def __init__(self, real: types.ModuleType, version: str | None = None) -> None:
        super().__init__("tensorrt")
        self._real = real
        self.__version__ = version or real.__version__
        self.major = int(self.__version__.split(".")[0])
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.missing: list[str] = []  # names looked up that this version lacks (hasattr probes too)
        self.module_attrs: set[str] = set()  # module attributes read (tensorrt.X)
        self.unchecked: set[str] = set()  # parameter annotations accepted without a type check
        self.enum_members: set[str] = set()  # enum members read through the module (BuilderFlag.FP16)
        self._hooks: dict[tuple[str, str], Hook] = {}
        self._fakes: dict[str, type] = {}

    # -- behaviour ---------------------------------------------------------------------------------
    def on(self, cls: str, member: str, hook: Hook) -> None:
        """Make `cls.member` (a method, property getter, or "__init__") return `hook(self_obj, *args)`.

        The class and member must exist in the real bindings; a hook for a name TensorRT lacks
        would hide exactly what this fake checks.
        """
        real_cls = getattr(self._real, cls)
        if member != "__init__" and not hasattr(real_cls, member):
            raise AttributeError(f"TensorRT {self.__version__}: {cls} has no member {member!r}; no hook")
        self._hooks[(cls, member)] = hook

    def _hook(self, cls: type, member: str) -> Hook | None:
        for klass in cls.__mro__:
            hook = self._hooks.get((klass.__name__, member))
            if hook is not None:
                return hook
        return None

    def fail(self, message: str, exc: type[Exception] = ApiMismatch) -> Exception:
        message = f"TensorRT {self.__version__}: {message}"
        self.violations.append(message)
        return exc(message)

    def used(self, kind: str | None = None) -> set[str]:
        """`Class.member` names recorded so far (optionally of one kind)."""
        return {f"{c.cls}.{c.member}" for c in self.calls if kind is None or c.kind == kind}

    # -- module attributes -------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        try:
            value = getattr(self._real, name)
        except AttributeError:
            self.missing.append(name)
            raise AttributeError(f"module 'tensorrt' {self.__version__} has no attribute {name!r}"
                                 ) from None
        self.module_attrs.add(name)
        if isinstance(value, type) and hasattr(value, "__members__"):
            return _EnumView(self, value)
        if isinstance(value, type) and not _constructs_alone(value):
            return self.fake_class(value)
        if callable(value) and type(value).__name__ == "builtin_function_or_method":
            return self._checked_function(name, value)
        return value

    def _checked_function(self, name: str, func: Any) -> Callable[..., Any]:
        sigs = signatures(func, name, has_self=False)

        def call(*args: Any, **kwargs: Any) -> Any:
            sig = self.bind(sigs, args, kwargs, f"tensorrt.{name}")
            self.calls.append(Call("tensorrt", name, "call", args, kwargs, sig.text))
            hook = self._hooks.get(("tensorrt", name))
            return hook(None, *args, **kwargs) if hook else self.default(sig.returns)

        return call

    def fake_class(self, real_cls: type) -> type:
        """The fake class standing in for `real_cls` (same name, fake bases for TensorRT bases)."""
        name = real_cls.__name__
        if name not in self._fakes:
            bases = tuple(self.fake_class(b) for b in real_cls.__bases__
                          if b.__module__ == real_cls.__module__ and not _constructs_alone(b))
            bases = bases or (FakeObject,)
            self._fakes[name] = _FakeMeta(name, bases, {"_real_cls": real_cls, "_api": self,
                                                      "__module__": "tensorrt"})
        return self._fakes[name]

    def new(self, cls_name: str, **state: Any) -> FakeObject:
        """A fake instance of `cls_name` (as TensorRT would return it), with attribute state."""
        obj = object.__new__(self.fake_class(getattr(self._real, cls_name)))
        object.__setattr__(obj, "_state", dict(state))
        return obj

    # -- types ---------------------------------------------------------------------------------
    def resolve(self, annotation: str) -> Any:
        """A real class for 'trt10_real.tensorrt.X' (dotted tails too), else None."""
        m = re.fullmatch(r"[\w.]*?\btensorrt\.([\w.]+)", annotation.strip())
        if not m:
            return None
        obj: Any = self._real
        for part in m.group(1).split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj

    def accepts(self, annotation: str, value: Any) -> bool:
        """Whether pybind11 would convert `value` to `annotation` (conservatively)."""
        a = annotation.strip()
        if a.startswith("typing."):
            a = a[len("typing."):]
        if a.startswith("collections.abc."):
            a = a[len("collections.abc."):]
        if a.startswith("Optional[") and a.endswith("]"):
            return value is None or self.accepts(a[9:-1], value)
        if a.startswith("Union[") and a.endswith("]"):
            return any(self.accepts(part, value) for part in _split_top(a[6:-1]))
        if len(parts := _split_top(a, "|")) > 1:
            return any(self.accepts(part, value) for part in parts)
        m = re.fullmatch(r"(List|list|Sequence|Tuple|tuple)\[(.*)\]", a)
        if m:
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                return False
            inner = _split_top(m.group(2))
            if len(inner) == 1 or inner[-1] == "...":
                return all(self.accepts(inner[0], v) for v in value)
            return len(inner) == len(value) and all(self.accepts(t, v)
                                                    for t, v in zip(inner, value, strict=True))
        if a in ("None", "NoneType"):
            return value is None
        if a in ("int", "SupportsInt", "SupportsIndex"):
            return isinstance(value, int) or (hasattr(value, "__index__") and not _is_fake(value))
        if a in ("float", "SupportsFloat"):
            return isinstance(value, int | float) or hasattr(value, "__float__")
        if a == "bool":
            return isinstance(value, bool) or type(value).__name__ == "bool_"
        if a == "str":
            return isinstance(value, str)
        if a in ("bytes",):
            return isinstance(value, bytes | bytearray)
        if a in ("tuple", "list", "dict"):  # pybind11's py::tuple/list/dict casters are strict
            return isinstance(value, {"tuple": tuple, "list": list, "dict": dict}[a])
        if a in ("buffer", "typing_extensions.Buffer", "Buffer"):
            if _is_fake(value):
                return type(value)._real_cls.__name__ == "IHostMemory"
            try:
                memoryview(value)
                return True
            except TypeError:
                return False
        if a in ("capsule", "typing_extensions.CapsuleType", "CapsuleType"):
            # a void* parameter: pybind11 takes None, a capsule or any pybind11-bound object
            return value is None or _is_fake(value) or any(
                k.__name__ in ("PyCapsule", "pybind11_object") for k in type(value).__mro__)
        real = self.resolve(a)
        if real is None:
            if a.startswith(("trt", "tensorrt")):
                return False  # a TensorRT type this version does not have
            self.unchecked.add(a)  # numpy.ndarray, object, C++ names pybind11 left raw...
            return True
        if _is_fake(value):
            return issubclass(type(value)._real_cls, real)
        if isinstance(value, real):
            return True
        if hasattr(real, "__members__"):  # pybind11 enums convert from nothing else
            return False
        if issubclass(real, getattr(self._real, "Dims", ())) or real.__name__ == "Permutation":
            return isinstance(value, Sequence) and not isinstance(value, str) and all(
                isinstance(v, int) for v in value)
        return False

    def bind(self, sigs: list[Signature], args: tuple, kwargs: dict, where: str) -> Signature:
        """The first overload that accepts (args, kwargs), or raise `ApiMismatch` naming all."""
        for sig in sigs:
            if self._binds(sig, args, kwargs):
                return sig
        shown = ", ".join([_short(a) for a in args] + [f"{k}={_short(v)}" for k, v in kwargs.items()])
        overloads = "\n    ".join(s.text for s in sigs)
        raise self.fail(f"{where}({shown}) matches no signature of the real bindings:\n    {overloads}")

    def _binds(self, sig: Signature, args: tuple, kwargs: dict) -> bool:
        positional = [p for p in sig.params if p.kind == "positional"]
        var_pos = any(p.kind == "var_positional" for p in sig.params)
        var_kw = any(p.kind == "var_keyword" for p in sig.params)
        if len(args) > len(positional) and not var_pos:
            return False
        bound: dict[str, Any] = {}
        for p, v in zip(positional, args, strict=False):
            bound[p.name] = v
        named = {p.name: p for p in sig.params if p.kind in ("positional", "keyword_only")}
        for k, v in kwargs.items():
            if k in bound or (k not in named and not var_kw):
                return False
            bound[k] = v
        for p in named.values():
            if p.name not in bound and not p.has_default:
                return False
        return all(self.accepts(named[k].annotation, v) for k, v in bound.items() if k in named)

    def default(self, annotation: str) -> Any:
        """What an unhooked call returns: a fake of a returned TensorRT class, else a plain default."""
        a = annotation.strip().removeprefix("typing.")
        if a.startswith("Optional[") and a.endswith("]"):
            a = a[9:-1]
        if a in ("None", ""):
            return None
        if a == "bool":
            return True
        if a in ("int", "SupportsInt", "float"):
            return 0
        if a == "str":
            return ""
        if re.match(r"(List|list|Sequence|Tuple|tuple)\[", a):
            return []
        real = self.resolve(a)
        if isinstance(real, type) and not hasattr(real, "__members__"):
            return real() if _constructs_alone(real) else self.new(real.__name__)
        return None


class _EnumView:
    """A real enum as the fake module hands it out: members are the real members, reads recorded."""

    def __init__(self, api: DerivedTrt, enum: type) -> None:
        self._api, self._enum = api, enum

    def __getattr__(self, name: str) -> Any:
        try:
            value = getattr(self._enum, name)
        except AttributeError:
            self._api.missing.append(f"{self._enum.__name__}.{name}")
            raise AttributeError(f"TensorRT {self._api.__version__}: {self._enum.__name__} has no member "
                                 f"{name!r}") from None
        self._api.enum_members.add(f"{self._enum.__name__}.{name}")
        self._api.module_attrs.add(name)
        return value

    def __instancecheck__(self, instance: Any) -> bool:
        return isinstance(instance, self._enum)


def _constructs_alone(cls: type) -> bool:
    """Classes that construct without TensorRT's libraries: values and Python-implementable interfaces."""
    cached = _CONSTRUCTS.get(cls)
    if cached is None:
        try:
            cls()
            cached = True
        except Exception:
            cached = False
        _CONSTRUCTS[cls] = cached
    return cached


_CONSTRUCTS: dict[type, bool] = {}


def _is_fake(value: Any) -> bool:
    return isinstance(value, FakeObject)


def _short(value: Any) -> str:
    if _is_fake(value):
        return f"<fake {type(value).__name__}>"
    text = repr(value)
    return text if len(text) < 40 else text[:37] + "..."


class _FakeMeta(type):
    """Class-level lookups (`trt.ILogger.Severity`, static members) go to the real class."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        real = cls.__dict__.get("_real_cls") or cls._real_cls
        value = getattr(real, name)
        if isinstance(value, property) or callable(value) and not isinstance(value, type):
            raise AttributeError(f"fake {cls.__name__}.{name}: use it on an instance")
        return value

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        api: DerivedTrt = cls._api
        real = cls._real_cls
        try:
            sigs = signatures(real.__init__, "__init__")
        except ValueError:  # pybind11 gives such classes no constructor: "No constructor defined!"
            raise api.fail(f"{real.__name__} cannot be constructed from Python") from None
        sig = api.bind(sigs, args, kwargs, f"{real.__name__}")
        api.calls.append(Call(real.__name__, "__init__", "init", args, kwargs, sig.text))
        hook = api._hook(real, "__init__")
        obj = object.__new__(cls)
        object.__setattr__(obj, "_state", {})
        if hook is not None:
            result = hook(obj, *args, **kwargs)
            if result is not None:
                return result
        return obj


class FakeObject(metaclass=_FakeMeta):
    """Base of the derived fake classes; members come from `_real_cls` only."""

    _real_cls: type = object
    _api: DerivedTrt
    _state: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        cls, api = self._real_cls, self._api
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        try:
            member = getattr(cls, name)
        except AttributeError:
            api.missing.append(f"{cls.__name__}.{name}")
            raise AttributeError(f"TensorRT {api.__version__}: {cls.__name__} has no attribute {name!r}"
                                 ) from None
        if isinstance(member, property):
            sig = property_signature(member, setter=False)
            api.calls.append(Call(cls.__name__, name, "get"))
            if name in self._state:
                return self._state[name]
            hook = api._hook(cls, name)
            if hook is not None:
                return hook(self)
            return api.default(sig.returns if sig else "object")
        if callable(member) and not isinstance(member, type):
            sigs = signatures(member, name)

            def method(*args: Any, **kwargs: Any) -> Any:
                sig = api.bind(sigs, args, kwargs, f"{cls.__name__}.{name}")
                api.calls.append(Call(cls.__name__, name, "call", args, kwargs, sig.text))
                hook = api._hook(cls, name)
                return hook(self, *args, **kwargs) if hook is not None else api.default(sig.returns)

            return method
        return member

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        cls, api = self._real_cls, self._api
        member = getattr(cls, name, None)
        if not isinstance(member, property):
            raise api.fail(f"{cls.__name__}.{name} is not a property of the real class", AttributeError)
        sig = property_signature(member, setter=True)
        if sig is None:
            raise api.fail(f"{cls.__name__}.{name} is read-only", AttributeError)
        annotation = sig.params[-1].annotation if sig.params else "object"
        if not api.accepts(annotation, value):
            raise api.fail(f"{cls.__name__}.{name} = {_short(value)}: the setter takes {annotation}")
        api.calls.append(Call(cls.__name__, name, "set", (value,), {}, sig.text))
        self._state[name] = value

    def __bytes__(self) -> bytes:
        # IHostMemory's buffer protocol (set in C++, not visible in the class dict).
        if self._real_cls.__name__ != "IHostMemory":
            raise TypeError(f"cannot convert {self._real_cls.__name__} to bytes")
        return bytes(self._state.get("payload", b""))

    def __repr__(self) -> str:
        return f"<fake tensorrt.{self._real_cls.__name__} {self._api.__version__}>"
