"""Saving and loading fitted estimators and posteriors, without pickle.

Two file formats, both versioned and checksummed:

``GaussianMixture.save(path)`` -> an ``.npz`` archive (numpy's zip of ``.npy`` arrays, read with
``allow_pickle=False``) holding

* ``__header__``: JSON ``{"magic": "bayesgmm", "kind": "GaussianMixture", "format_version": 1,
  "bayesgmm_version": ..., "sha256": ...}``,
* ``__spec__``: JSON of ``get_params()`` (a :class:`~bayesgmm.Prior` as its fields, a
  ``RandomState`` as its state) and the scalar fitted attributes,
* one array per fitted array attribute (``weights_``, ``means_``, ``covariances_``,
  ``precisions_``, ``precisions_cholesky_``, ``lower_bounds_``, ``feature_names_in_``, the
  standardisation used for scoring) and per array of ``map_result_``.

``Posterior.save(path)`` -> a netCDF-4 file (:func:`arviz.from_netcdf` opens it as ordinary
``InferenceData``) with the groups of :attr:`Posterior.idata` plus a ``bayesgmm`` group with the
MAP pivot, the NUTS sampler state needed by :meth:`Posterior.extend`, array-valued run info and
the JSON header/spec as attributes.

The SHA-256 checksum covers the spec and every stored array (dtype, shape and bytes; strings by
value), so that a modified or truncated file is refused with a ``ValueError`` naming the file (it
detects corruption and accidental edits; it is not a signature against deliberate forgery, but
loading never executes code from the file either way).
Files are written to a temporary file in the target folder and moved into place with
:func:`os.replace`, so ``path`` never holds a half-written file. A file written by a newer format
version is refused with a message to upgrade.

What is stored is each class's business: ``GaussianMixture._get_state`` /
``GaussianMixture._from_state`` and ``Posterior._state`` / ``Posterior._from_state`` name their
state as plain values; this module only lays it out in a file. It imports neither class at module
level: ``GaussianMixture`` registers itself as the class that model files load into, and
:func:`load_posterior` imports :mod:`bayesgmm.posterior` (and with it xarray) when called.

Not stored: ``map_result_.info`` (the per-restart EM diagnostics in standardised units; it is
``None`` after loading -- predictions never use it) and a ``Posterior``'s cached computations
(recomputed on demand, identically).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from ._version import __version__
from .core.params import GMMParams
from .core.prior import Prior, ResolvedPrior
from .infer.state import FlatState, flatten_state

__all__ = ["FORMAT_VERSION", "load", "load_posterior", "save_estimator", "save_posterior"]

#: Version of both file layouts; bump on any incompatible change (files of a newer version are refused).
FORMAT_VERSION = 1
_MAGIC = "bayesgmm"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"  # netCDF-4 files are HDF5 files


# ---------------------------------------------------------------------------------------------
# shared helpers: checksums, atomic writes, JSON values
# ---------------------------------------------------------------------------------------------
def _digest(spec_json: str, arrays: dict) -> str:
    """SHA-256 over the spec and the arrays (sorted by name; strings hashed by value)."""
    h = hashlib.sha256()
    h.update(spec_json.encode("utf-8"))
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        h.update(b"\0" + name.encode("utf-8") + b"\0")
        h.update(repr(a.shape).encode())
        if a.dtype.kind in "OUS":
            h.update(b"str")
            h.update(json.dumps([str(v) for v in a.reshape(-1).tolist()]).encode("utf-8"))
        else:
            h.update(a.dtype.str.encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _atomic_write(path, write):
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then move it to ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OSError(f"cannot save to {path!r}: the folder {folder!r} does not exist.")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
    return path


def _header(kind: str, digest: str) -> str:
    return json.dumps({
        "magic": _MAGIC, "kind": kind, "format_version": FORMAT_VERSION,
        "bayesgmm_version": __version__, "sha256": digest,
    })


def _check_header(path, header_json, kind):
    try:
        header = json.loads(header_json)
    except (TypeError, ValueError):
        raise ValueError(f"{path!r} is not a bayesgmm file: its header is not valid JSON.") from None
    if not isinstance(header, dict) or header.get("magic") != _MAGIC:
        raise ValueError(f"{path!r} is not a bayesgmm file (no bayesgmm header).")
    if header.get("kind") != kind:
        raise ValueError(
            f"{path!r} holds a bayesgmm {header.get('kind')!r}, not a {kind!r}; load it with "
            f"{'bayesgmm.load_posterior' if header.get('kind') == 'Posterior' else 'bayesgmm.load'}."
        )
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{path!r} has an invalid format version {version!r}.")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path!r} was written in bayesgmm file format version {version} (by bayesgmm "
            f"{header.get('bayesgmm_version')}); this bayesgmm reads versions up to {FORMAT_VERSION}. "
            "Upgrade bayesgmm to load it."
        )
    return header


def _check_digest(path, header, spec_json, arrays):
    if _digest(spec_json, arrays) != header.get("sha256"):
        raise ValueError(
            f"{path!r} failed its SHA-256 checksum: the file was modified or corrupted after it was "
            "saved. Re-save it from the original object."
        )


def _to_json_value(name, v, arrays):
    """A parameter value as JSON; arrays go to ``arrays`` under ``param:<name>``."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, np.ndarray):
        if v.dtype.kind not in "biuf":
            raise TypeError(f"cannot save {name}: arrays of dtype {v.dtype} are not supported.")
        arrays[f"param:{name}"] = v
        return {"__ndarray__": f"param:{name}"}
    if isinstance(v, (list, tuple)):
        a = np.asarray(v)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"cannot save {name}={v!r}: only numbers and arrays of numbers are supported.")
        arrays[f"param:{name}"] = a
        return {"__list__": f"param:{name}", "tuple": isinstance(v, tuple)}
    raise TypeError(
        f"cannot save the parameter {name}={v!r} (type {type(v).__name__}); only numbers, strings, "
        "None, arrays, a bayesgmm.Prior and an int or RandomState random_state can be saved."
    )


def _from_json_value(v, arrays):
    if isinstance(v, dict) and "__ndarray__" in v:
        return arrays[v["__ndarray__"]]
    if isinstance(v, dict) and "__list__" in v:
        out = arrays[v["__list__"]].tolist()
        return tuple(out) if v.get("tuple") else out
    return v


def _prior_to_json(prior, arrays):
    if prior is None or isinstance(prior, str):
        return prior
    if isinstance(prior, Prior):
        return {"__prior__": {f.name: _to_json_value(f"prior.{f.name}", getattr(prior, f.name), arrays)
                              for f in dataclasses.fields(prior)}}
    if isinstance(prior, dict):
        return {"__prior_dict__": {k: _to_json_value(f"prior.{k}", v, arrays) for k, v in prior.items()}}
    raise TypeError(f"cannot save prior={prior!r}; use 'default', None or a bayesgmm.Prior.")


def _prior_from_json(v, arrays):
    if isinstance(v, dict) and "__prior__" in v:
        fields = {k: _from_json_value(x, arrays) for k, x in v["__prior__"].items()}
        # files written before Prior.covariance_floor existed describe the model without it
        fields.setdefault("covariance_floor", 0.0)
        return Prior(**fields)
    if isinstance(v, dict) and "__prior_dict__" in v:
        return {k: _from_json_value(x, arrays) for k, x in v["__prior_dict__"].items()}
    return v


def _random_state_to_json(rs, arrays):
    if rs is None or isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
        return None if rs is None else int(rs)
    if isinstance(rs, np.random.RandomState):
        name, keys, pos, has_gauss, gauss = rs.get_state(legacy=True)
        arrays["random_state:keys"] = np.asarray(keys, np.uint32)
        return {"__random_state__": name, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
    raise TypeError(
        f"cannot save random_state={rs!r}: only None, an int or a numpy RandomState can be saved."
    )


def _random_state_from_json(v, arrays):
    if isinstance(v, dict) and "__random_state__" in v:
        rs = np.random.RandomState()
        rs.set_state((v["__random_state__"], arrays["random_state:keys"], v["pos"], v["has_gauss"],
                      v["cached_gaussian"]))
        return rs
    return v


# ---------------------------------------------------------------------------------------------
# GaussianMixture
# ---------------------------------------------------------------------------------------------
#: The class each kind of file is loaded into. A class registers itself with ``_loads_into``
#: (:class:`~bayesgmm.GaussianMixture` when :mod:`bayesgmm.estimator` is imported, which ``import
#: bayesgmm`` does), so that this module, below the classes whose state it stores, imports none.
_CLASSES: dict = {}


def _loads_into(kind: str):
    """Class decorator: files of ``kind`` are loaded with ``cls._from_state(params, state)``."""

    def register(cls):
        _CLASSES[kind] = cls
        return cls

    return register


def _params_arrays(prefix, p, arrays):
    for field in ("weights", "means", "scales", "corr_chol"):
        v = getattr(p, field)
        if v is not None:
            arrays[f"{prefix}.{field}"] = np.asarray(v)
    return p.covariance_type


def _params_from_arrays(prefix, covariance_type, arrays):
    return GMMParams(
        weights=arrays[f"{prefix}.weights"], means=arrays[f"{prefix}.means"],
        scales=arrays[f"{prefix}.scales"], corr_chol=arrays.get(f"{prefix}.corr_chol"),
        covariance_type=covariance_type,
    )


_RESOLVED_PRIOR_FIELDS = ("weight_concentration", "mean_loc", "mean_scale", "scale_scale",
                          "lkj_concentration", "covariance_floor")


def _resolved_prior_to(prefix, rp, arrays):
    if rp is None:
        return None
    for field in _RESOLVED_PRIOR_FIELDS:
        if getattr(rp, field) is not None:
            arrays[f"{prefix}.{field}"] = np.asarray(getattr(rp, field))
    return {"scale_prior": rp.scale_prior, "ordered_means": bool(rp.ordered_means)}


def _resolved_prior_from(prefix, meta, arrays):
    if meta is None:
        return None
    # covariance_floor is absent from files written before it existed (the model without it)
    return ResolvedPrior(**{f: arrays.get(f"{prefix}.{f}") for f in _RESOLVED_PRIOR_FIELDS},
                         scale_prior=meta["scale_prior"],
                         ordered_means=meta["ordered_means"])


def _split(prefix, arrays):
    """The arrays named ``prefix<name>`` (not further dotted), by ``name``, in file order."""
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix) and "." not in k[len(prefix):]}


def save_estimator(estimator, path):
    """Write a fitted :class:`~bayesgmm.GaussianMixture` to ``path`` (see :meth:`GaussianMixture.save`).

    The file holds ``estimator.get_params(deep=False)`` and ``estimator._get_state()``.
    """
    state = estimator._get_state()  # NotFittedError first
    arrays: dict = {}
    params = {}
    for name, v in estimator.get_params(deep=False).items():
        if name == "prior":
            params[name] = _prior_to_json(v, arrays)
        elif name == "devices" and not (v is None or isinstance(v, (int, np.integer))):
            params[name] = None  # a placement on this machine's devices, not part of the model
        elif name == "random_state":
            params[name] = _random_state_to_json(v, arrays)
        else:
            params[name] = _to_json_value(name, v, arrays)
    for name, v in state["arrays"].items():
        arrays[f"fitted:{name}"] = v
    spec = {"class": type(estimator).__name__, "params": params, "fitted": dict(state["scalars"]),
            "fitted_arrays": list(state["arrays"])}
    m = state["map_result"]
    if m is not None:
        spec["map_result"] = {
            "covariance_type": _params_arrays("map.params", m["params"], arrays),
            "prior": _resolved_prior_to("map.prior", m["prior"], arrays),
            **m["scalars"],
        }
        for name, v in m["arrays"].items():
            arrays[f"map.{name}"] = v
    online = state["online"]
    if online is not None:
        spec["online"] = _params_arrays("online.params", online["params"], arrays)
        for name, v in online["arrays"].items():
            arrays[f"online.{name}"] = v
    spec_json = json.dumps(spec, sort_keys=True, allow_nan=True)
    header = _header("GaussianMixture", _digest(spec_json, arrays))

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, __header__=np.asarray(header), __spec__=np.asarray(spec_json), **arrays)

    return _atomic_write(path, write)


def _read_npz(path):
    """``(header_json, spec_json, arrays)`` of an ``.npz`` file; ValueError for anything else."""
    path = os.fspath(path)
    with open(path, "rb") as f:  # OSError (missing file, a folder, no permission) names the path
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        hint = " (it looks like a netCDF/HDF5 file: load a saved posterior with bayesgmm.load_posterior)" \
            if magic == _HDF5_SIGNATURE[:4] else ""
        raise ValueError(
            f"{path!r} is not a bayesgmm save file: it is not an .npz archive (a model saved with "
            f"GaussianMixture.save){hint}."
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if "__header__" not in names or "__spec__" not in names:
                raise ValueError(f"{path!r} is an .npz archive but not a bayesgmm file (no bayesgmm header).")
            header_json, spec_json = str(z["__header__"][()]), str(z["__spec__"][()])
            arrays = {name: z[name] for name in names if name not in ("__header__", "__spec__")}
    except ValueError as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"{path!r} is not a readable bayesgmm file: {e}") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError) as e:
        raise ValueError(
            f"{path!r} is truncated or corrupted ({type(e).__name__}: {e}); re-save it."
        ) from None
    return header_json, spec_json, arrays


def load(path):
    """Load a :class:`~bayesgmm.GaussianMixture` saved with :meth:`GaussianMixture.save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    GaussianMixture
        With bit-identical parameters and fitted attributes, so ``predict``, ``predict_proba``,
        ``score_samples`` and ``sample`` give identical outputs. ``map_result_.info`` is None.

    Raises
    ------
    OSError
        The file cannot be opened.
    ValueError
        The file is not a bayesgmm model, is truncated, fails its checksum or was written by a
        newer file format version.
    """
    header_json, spec_json, arrays = _read_npz(path)
    header = _check_header(path, header_json, "GaussianMixture")
    _check_digest(path, header, spec_json, arrays)
    try:
        spec = json.loads(spec_json)
        params = {}
        for name, v in spec["params"].items():
            if name == "prior":
                params[name] = _prior_from_json(v, arrays)
            elif name == "random_state":
                params[name] = _random_state_from_json(v, arrays)
            else:
                params[name] = _from_json_value(v, arrays)
        state = {"scalars": spec["fitted"], "arrays": {name: arrays[f"fitted:{name}"] for name in spec["fitted_arrays"]},
                 "map_result": None, "online": None}
        if "map_result" in spec:
            m = dict(spec["map_result"])
            state["map_result"] = {
                "params": _params_from_arrays("map.params", m.pop("covariance_type"), arrays),
                "prior": _resolved_prior_from("map.prior", m.pop("prior"), arrays),
                "scalars": m, "arrays": _split("map.", arrays),
            }
        if "online" in spec:
            state["online"] = {"params": _params_from_arrays("online.params", spec["online"], arrays),
                               "arrays": _split("online.", arrays)}
        return _CLASSES["GaussianMixture"]._from_state(params, state)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{os.fspath(path)!r} is a malformed bayesgmm model file ({type(e).__name__}: {e}).") from None


# ---------------------------------------------------------------------------------------------
# Posterior
# ---------------------------------------------------------------------------------------------
_STATE_GROUP = "bayesgmm"


def _tree_to_json(v, arrays, prefix):
    """Run info (nested dicts of scalars, strings and arrays) as JSON; arrays go to ``arrays``."""
    if isinstance(v, dict):
        items = []
        for key, val in v.items():
            enc = {"tuple": [str(k) for k in key]} if isinstance(key, tuple) else str(key)
            items.append([enc, _tree_to_json(val, arrays, prefix)])
        return {"__dict__": items}
    if v is None or isinstance(v, (bool, str, int, float)):
        return v
    if isinstance(v, (np.bool_, np.integer, np.floating)):
        return v.item()
    if hasattr(v, "shape") and hasattr(v, "dtype"):
        name = f"{prefix}{len(arrays)}"
        arrays[name] = np.asarray(v)
        return {"__array__": name}
    if isinstance(v, (list, tuple)):
        return [_tree_to_json(x, arrays, prefix) for x in v]
    return {"__repr__": repr(v)}  # not data (e.g. an optimiser object): kept as text only


def _tree_from_json(v, arrays):
    if isinstance(v, dict):
        if "__dict__" in v:
            out = {}
            for enc, val in v["__dict__"]:
                key = tuple(enc["tuple"]) if isinstance(enc, dict) else enc
                out[key] = _tree_from_json(val, arrays)
            return out
        if "__array__" in v:
            return arrays[v["__array__"]]
        if "__repr__" in v:
            return v["__repr__"]
    if isinstance(v, list):
        return [_tree_from_json(x, arrays) for x in v]
    return v


def _posterior_digest_arrays(groups: dict, extra: dict) -> dict:
    """Every array the checksum covers: ``group/variable`` of each group, feature coordinates, extras."""
    out = {}
    for group, ds in groups.items():
        if group == _STATE_GROUP:
            continue
        for var in ds.data_vars:
            out[f"{group}/{var}"] = ds[var].values
        for coord in ("feature", "component"):
            if coord in ds.coords:
                out[f"{group}/coords/{coord}"] = ds.coords[coord].values
    for name, v in extra.items():
        out[f"{_STATE_GROUP}/{name}"] = v
    return out


def save_posterior(post, path):
    """Write a :class:`~bayesgmm.Posterior` to ``path`` (see :meth:`Posterior.save`).

    The file holds the groups of ``post.idata`` and what ``post._state()`` has beyond them.
    """
    from . import _arviz  # xarray: imported only when a posterior is saved

    state = post._state()
    idata = post.idata
    arrays: dict = {}
    _params_arrays("pivot", state["pivot"], arrays)
    sampler_meta = None
    if state["prior"] is not None:
        sampler_meta = {"prior": _resolved_prior_to("sampler.prior", state["prior"], arrays)}
        arrays["sampler.shift"] = np.asarray(state["shift"])
        arrays["sampler.scale"] = np.asarray(state["scale"])
    state_meta = None
    if state["sampler_state"] is not None:
        flat = flatten_state(state["sampler_state"])
        for i, leaf in enumerate(flat.leaves):
            arrays[f"state.{i}"] = leaf
        state_meta = {"paths": list(flat.paths), "is_key": list(flat.is_key), "key_impl": flat.key_impl}
    info_json = _tree_to_json(state["info"], arrays, "info.")
    spec = {
        "method": state["method"], "relabel_method": state["relabel_method"], "max_iter": int(state["max_iter"]),
        "num_warmup": None if state["num_warmup"] is None else int(state["num_warmup"]),
        "covariance_type": state["draws"].covariance_type, "feature_names": state["feature_names"],
        "has_sample_weight": state["sample_weight"] is not None, "info": info_json,
        "state": state_meta, "sampler": sampler_meta,
    }
    spec_json = json.dumps(spec, sort_keys=True, allow_nan=True)
    groups = _arviz.groups(idata)
    digest = _digest(spec_json, _posterior_digest_arrays(groups, arrays))
    attrs = {"bayesgmm_header": _header("Posterior", digest), "bayesgmm_spec": spec_json}
    return _atomic_write(path, lambda tmp: _arviz.write_netcdf(idata, tmp, {_STATE_GROUP: (arrays, attrs)}))


def load_posterior(path):
    """Load a :class:`~bayesgmm.Posterior` saved with :meth:`Posterior.save`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Posterior
        With identical draws (relabelled and raw), permutations, sampler statistics, data and
        weights, so ``summary()``, ``diagnostics()``, ``predict_proba`` and the other summaries
        are identical; a NUTS posterior keeps its sampler state and can be :meth:`extended
        <Posterior.extend>`.

    Raises
    ------
    OSError
        The file cannot be opened.
    ValueError
        The file is not a bayesgmm posterior, is truncated, fails its checksum or was written by
        a newer file format version.
    """
    from . import _arviz  # xarray: imported only when a posterior is loaded
    from .posterior import Posterior

    path = os.fspath(path)
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic != _HDF5_SIGNATURE:
        hint = " (it looks like a model saved with GaussianMixture.save: use bayesgmm.load)" if magic[:4] == b"PK\x03\x04" else ""
        raise ValueError(
            f"{path!r} is not a bayesgmm posterior file: it is not a netCDF-4 file (one written by "
            f"Posterior.save){hint}."
        )
    try:
        groups = _arviz.read_netcdf(path)
    except Exception as e:  # h5py / xarray raise OSError, ValueError, KeyError, RuntimeError, ...
        raise ValueError(f"{path!r} is truncated or corrupted ({type(e).__name__}: {e}); re-save it.") from None
    state = groups.pop(_STATE_GROUP, None)
    if state is None or "bayesgmm_header" not in state.attrs:
        raise ValueError(f"{path!r} is a netCDF file but not a bayesgmm posterior (no bayesgmm group).")
    header = _check_header(path, state.attrs["bayesgmm_header"], "Posterior")
    spec_json = str(state.attrs.get("bayesgmm_spec", ""))
    arrays = {name: state[name].values for name in state.data_vars}
    _check_digest(path, header, spec_json, _posterior_digest_arrays(groups, arrays))
    try:
        spec = json.loads(spec_json)
        ct = spec["covariance_type"]

        def params_of(ds):
            return GMMParams(
                weights=ds["weights"].values, means=ds["means"].values, scales=ds["scales"].values,
                corr_chol=ds["corr_chol"].values if "corr_chol" in ds else None, covariance_type=ct,
            )

        raw_group = groups["unrelabelled_posterior"]
        sampler = {"prior": None, "shift": None, "scale": None}
        if spec["sampler"] is not None:
            sampler = {"prior": _resolved_prior_from("sampler.prior", spec["sampler"]["prior"], arrays),
                       "shift": arrays["sampler.shift"], "scale": arrays["sampler.scale"]}
        sampler_state = None
        if spec["state"] is not None:
            meta = spec["state"]
            sampler_state = FlatState(tuple(meta["paths"]), tuple(arrays[f"state.{i}"] for i in range(len(meta["paths"]))),
                                      tuple(bool(k) for k in meta["is_key"]), meta["key_impl"])
        stats = groups.get("sample_stats")
        return Posterior._from_state(dict(
            raw_draws=params_of(raw_group), draws=params_of(groups["posterior"]),
            permutations=raw_group["permutation"].values, x=groups["observed_data"]["obs"].values,
            pivot=_params_from_arrays("pivot", ct, arrays),
            sample_weight=groups["constant_data"]["sample_weight"].values if spec["has_sample_weight"] else None,
            feature_names=spec["feature_names"], method=spec["method"],
            info=_tree_from_json(spec["info"], arrays), num_warmup=spec["num_warmup"],
            sample_stats={} if stats is None else {name: stats[name].values for name in stats.data_vars},
            relabel_method=spec["relabel_method"], max_iter=spec["max_iter"],
            sampler_state=sampler_state, **sampler,
        ))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path!r} is a malformed bayesgmm posterior file ({type(e).__name__}: {e}).") from None
