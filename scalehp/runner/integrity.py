"""What ``scalehp resume`` may hand to Ray: a run folder's state, signed with the user's key.

Ray keeps its experiment state as pickles (``ray/tuner.pkl``, pickled objects inside
``ray/experiment_state-*.json``, the searcher's state), and unpickling runs code. So a run
signs what it writes, with a key only this user on this machine holds (:func:`key_file`),
and ``resume`` checks it all before Ray starts or anything is unpickled. ``integrity.json``,
beside ``plan.json``, holds:

* ``plan``: an HMAC-SHA256 of ``plan.json``'s exact bytes;
* ``files``: for each file of Ray's experiment state (everything under ``ray/`` outside the
  trials' checkpoint folders), the SHA-256 of the versions scalehp saw Ray write (the newest
  :data:`KEEP`, and the one in ``ray/`` now);
* ``checkpoints``: for each checkpoint folder (``ray/<trial>/checkpoint_NNNNNN``), a SHA-256
  over its files;
* ``key``: which key signed it (an id, not the key); ``mac``: an HMAC-SHA256 of the rest.

When signing happens, so that a driver killed at any moment (SIGKILL) leaves a folder that
resumes: Ray writes each snapshot of its state into a local staging folder, then copies it
into ``ray/``. Ray asks every callback for its state while it saves a snapshot, after the
state files are written and before the copy: :func:`signing_callback` signs them there, so
no snapshot reaches ``ray/`` unsigned (and one that cannot be signed is not copied). A
checkpoint is signed when the driver learns of it, before any snapshot can refer to it; a
checkpoint folder that is not signed was written after the last snapshot, no state refers
to it, and ``resume`` removes it before Ray starts (the trial writes it again).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

from scalehp.errors import IntegrityError, SpecError, escape
from scalehp.results.store import PLAN
from scalehp.spec import read_text_file

log = logging.getLogger(__name__)

KEY_ENV = "SCALEHP_KEY_FILE"  # another key file (tests, a key copied from another machine)
KEY_BYTES = 32
MANIFEST = "integrity.json"
RAY_FOLDER = "ray"  # Ray Tune's own experiment state, inside the run folder
KEEP = 3  # versions of one state file that stay signed (Ray copies the newest one it has)
_FORMAT = 1
_MANIFEST_LIMIT = 256 * 1024 * 1024
_IGNORED = {".validate_storage_marker"}  # Ray checks that it exists, never reads it
_CHECKPOINT = re.compile(r"checkpoint_\d+\Z")
_REFUSE = "resume will not load Ray state that scalehp did not sign; start the run again with scalehp run"


# ---------------------------------------------------------------------------
# The key


def key_file() -> Path:
    """Where the key is: ``$SCALEHP_KEY_FILE``, else ``$XDG_CONFIG_HOME/scalehp/key``, else
    ``~/.config/scalehp/key``."""
    named = os.environ.get(KEY_ENV)
    if named:
        return Path(named).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(config) if os.path.isabs(config) else Path.home() / ".config"  # (XDG: relative is ignored)
    return base / "scalehp" / "key"


def load_key(*, create: bool = False) -> bytes:
    """This user's key: 32 random bytes in a file only its owner can read.

    Args:
        create: make the key when there is none (a new run); ``resume`` never makes one.

    Raises:
        IntegrityError: the key is missing (``create`` false), or its file is a link, not a
            regular file, another user's, readable by others or of the wrong size.
    """
    path = key_file()
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            raise IntegrityError(
                f"{path}: no scalehp key here, and runs are resumed only with the key that signed them: "
                f"copy the key file of the machine that started the run to {path} (mode 600), "
                f"or set {KEY_ENV} to it"
            ) from None
    return _create_key(path)


def _read_key(path: Path) -> bytes:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if os.path.islink(path):
            raise IntegrityError(f"{path}: the scalehp key is a symbolic link; it must be a regular file") from None
        raise IntegrityError(f"{path}: cannot read the scalehp key: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(info.st_mode):
            problem = "is not a regular file"
        elif info.st_uid != os.getuid():
            problem = "belongs to another user"
        elif info.st_mode & 0o077:
            problem = (
                f"can be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
                "chmod 600 it, or delete it if someone may have read it"
            )
        elif info.st_size != KEY_BYTES:
            problem = f"is {info.st_size} bytes, not {KEY_BYTES}: a damaged or foreign file"
        if problem:
            raise IntegrityError(f"{path}: the scalehp key {problem}")
        data = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) != KEY_BYTES:
        raise IntegrityError(f"{path}: the scalehp key is {len(data)} bytes, not {KEY_BYTES}")
    return data


def _create_key(path: Path) -> bytes:
    """Write a new key whole (a hidden file, then a hard link that fails if another process won)."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # made by another run a moment ago: use that one
    except OSError as exc:
        raise IntegrityError(
            f"{path}: cannot create the scalehp key ({exc.strerror or exc}); set {KEY_ENV} to a file "
            "in a folder you can write"
        ) from None
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def key_id(key: bytes) -> str:
    """A name for a key that reveals nothing of it (told apart in messages)."""
    return hmac.new(key, b"scalehp key id", hashlib.sha256).hexdigest()[:16]


# ---------------------------------------------------------------------------
# The manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _folder_digest(folder: Path) -> str:
    """SHA-256 over a folder's files: each one's path inside it, and its SHA-256; a link or
    a special file makes a digest that matches nothing scalehp signed."""
    digest = hashlib.sha256()
    entries = []
    for parent, dirs, files in os.walk(folder):
        for name in sorted(dirs + files):
            path = Path(parent, name)
            mode = os.lstat(path).st_mode
            rel = path.relative_to(folder).as_posix()
            if stat.S_ISREG(mode):
                entries.append(f"{rel}\0{_sha256(path)}")
            elif not stat.S_ISDIR(mode):
                entries.append(f"{rel}\0!{secrets.token_hex(8)}")
    for entry in sorted(entries):
        digest.update(entry.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def _shown(path: Path) -> str:
    """A path for a one-line message: names under ``ray/`` are anyone's, control characters escaped."""
    text = str(path)
    return text if text.isprintable() else f"'{escape(text)}'"  # quoted: the name is anyone's


def _same(signed: str, expected: str) -> bool:
    return hmac.compare_digest(signed.encode("utf-8", "surrogateescape"), expected.encode())


def _canonical(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class Manifest:
    """The signed record of one run folder (``integrity.json``); see the module's docstring."""

    def __init__(self, run_dir: Path, key: bytes, data: dict[str, Any]):
        self.run_dir = run_dir
        self.ray_dir = run_dir / RAY_FOLDER
        self.path = run_dir / MANIFEST
        self._key = key
        self.data = data
        self.lock = threading.RLock()  # Ray copies its state from a thread of its own (see vouch_copy)
        self.copies_signed = False  # each copy into ray/ is signed as it is made (session.state_copies)
        self._placed: dict[str, str] = {}  # rel -> hash of the copy vouch_copy signed and Ray renamed in

    def __reduce__(self) -> Any:  # the key never goes into a pickle
        raise TypeError("a Manifest holds the user's key and is never pickled")

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    @classmethod
    def start(cls, run_dir: Path, key: bytes, run_id: str, plan: bytes | None = None) -> Manifest:
        """Sign a new run's ``plan.json``: ``plan``, the bytes about to be written (default: the file
        already written), before Ray starts."""
        data = {"format": _FORMAT, "run_id": run_id, "key": key_id(key), "files": {}, "checkpoints": {}}
        manifest = cls(run_dir, key, data)
        run_dir.mkdir(parents=True, exist_ok=True)
        data["plan"] = manifest._mac(plan if plan is not None else (run_dir / PLAN).read_bytes())
        manifest.save()
        return manifest

    def save(self) -> None:
        """Write ``integrity.json`` whole (hidden temporary file, fsync, rename)."""
        with self.lock:
            body = {k: v for k, v in self.data.items() if k != "mac"}
            self.data["mac"] = self._mac(_canonical(body))
            temporary = self.run_dir / f".{MANIFEST}.tmp"
            with open(temporary, "w") as handle:
                json.dump(self.data, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)

    def vouch_file(self, rel: str, sha: str | None = None) -> None:
        """Sign the version of ``ray/<rel>`` that is there now (or the one whose hash is ``sha``)."""
        with self.lock:
            sha = sha or _sha256(self.ray_dir / rel)
            kept = self.data["files"].get(rel, [])
            current = self.ray_dir / rel
            there = self._placed.get(rel)
            if there is None:
                there = _sha256(current) if current.is_file() and not current.is_symlink() else None
            newest = kept[-(KEEP - 1) :]
            self.data["files"][rel] = [h for h in kept if h != sha and (h in newest or h == there)] + [sha]

    def vouch_snapshot(self, staging: Path) -> None:
        """Sign a snapshot Ray has just written to its staging folder, before Ray copies it into ``ray/``."""
        with self.lock:
            for parent, _, files in os.walk(staging):
                for name in files:
                    path = Path(parent, name)
                    if path.is_symlink() or not path.is_file():
                        continue
                    self.vouch_file(path.relative_to(staging).as_posix(), _sha256(path))
            self.save()

    def vouch_copy(self, copy: Path, rel: str) -> None:
        """Sign a file of Ray's state about to be renamed into ``ray/<rel>`` (see ``session.state_copies``)."""
        with self.lock:
            sha = _sha256(copy)
            self.vouch_file(rel, sha)
            self.save()
            self._placed[rel] = sha  # what ray/<rel> holds once renamed: not hashed again

    def vouch_checkpoint(self, folder: Path) -> None:
        """Sign a trial's checkpoint folder in ``ray/`` (saved with the next snapshot, which may refer to it)."""
        with self.lock:
            try:
                rel = folder.resolve().relative_to(self.ray_dir.resolve())
            except ValueError:
                return  # not in this run folder (remote storage): nothing resume would read here
            try:
                self.data["checkpoints"][rel.as_posix()] = _folder_digest(folder)
            except OSError as exc:  # Ray would drop the checkpoint if this raised; resume will not use it
                log.warning("%s: cannot sign this checkpoint (%s); a resume will not use it", folder, exc)

    # -- resume

    @classmethod
    def verify(cls, run_dir: Path) -> tuple[Manifest, list[Path]]:
        """Check a run folder before ``resume`` lets Ray read it.

        Returns:
            the manifest (to keep signing with), and the checkpoint folders no signed state
            refers to (written after Ray's last snapshot; to be removed before Ray starts).

        Raises:
            IntegrityError: ``integrity.json`` is missing, damaged or signed with another key;
                ``plan.json`` or a file under ``ray/`` is not what scalehp signed; the key is
                missing or unsafe.
        """
        path = run_dir / MANIFEST
        if not path.exists():
            raise IntegrityError(f"{path}: missing, so Ray's state in this folder is not signed; {_REFUSE}")
        try:
            data = json.loads(read_text_file(path, limit=_MANIFEST_LIMIT))
        except SpecError as exc:
            raise IntegrityError(str(exc)) from None
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), t) for k, t in (("key", str), ("mac", str), ("plan", str), ("files", dict))
        ):
            raise IntegrityError(f"{path}: damaged (not the signed record scalehp writes); {_REFUSE}")
        key = load_key()
        if not _same(data["key"], key_id(key)):
            raise IntegrityError(
                f"{path}: signed with another key (id {data['key'][:16]!r}; the key at {key_file()} is "
                f"{key_id(key)}): resume on the machine that started the run, or copy its key to {key_file()}"
            )
        manifest = cls(run_dir, key, data)
        try:
            body = _canonical({k: v for k, v in data.items() if k != "mac"})
        except (ValueError, RecursionError):
            body = b""
        if not _same(data["mac"], manifest._mac(body)):
            raise IntegrityError(f"{path}: changed after scalehp signed it; {_REFUSE}")
        if not isinstance(data.get("checkpoints"), dict):
            raise IntegrityError(f"{path}: damaged (not the signed record scalehp writes); {_REFUSE}")
        try:
            plan = read_text_file(run_dir / PLAN).encode("utf-8")
        except SpecError as exc:
            raise IntegrityError(str(exc)) from None
        if not _same(data["plan"], manifest._mac(plan)):
            raise IntegrityError(f"{run_dir / PLAN}: changed after the run started; resume refuses an edited plan")
        return manifest, manifest._check_ray_folder()

    def _check_ray_folder(self) -> list[Path]:
        files, checkpoints = self.data["files"], self.data["checkpoints"]
        unsigned: list[Path] = []
        if self.ray_dir.is_symlink():
            raise IntegrityError(f"{self.ray_dir}: a link, not Ray's own folder; {_REFUSE}")
        for parent, dirs, names in os.walk(self.ray_dir):
            folder = Path(parent)
            for name in dirs + names:
                mode = os.lstat(folder / name).st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise IntegrityError(f"{_shown(folder / name)}: a link or special file in Ray's state; {_REFUSE}")
            rel = folder.relative_to(self.ray_dir)
            if len(rel.parts) == 2 and _CHECKPOINT.match(rel.parts[1]):
                dirs[:] = []  # the checkpoint folder is checked as a whole
                signed = checkpoints.get(rel.as_posix())
                if signed is None:
                    unsigned.append(folder)
                elif not isinstance(signed, str) or not _same(signed, _folder_digest(folder)):
                    raise IntegrityError(f"{_shown(folder)}: checkpoint changed after scalehp signed it; {_REFUSE}")
                continue
            for name in names:
                key = (rel / name).as_posix()
                if key in _IGNORED:
                    continue
                if name.startswith(".") and name.endswith(".scalehp-tmp"):  # a copy cut short by a kill
                    unsigned.append(folder / name)
                    continue
                signed = files.get(key)
                if not isinstance(signed, list) or _sha256(folder / name) not in signed:
                    what = "changed after scalehp signed it" if signed else "not written by this run"
                    raise IntegrityError(f"{_shown(folder / name)}: {what}; {_REFUSE}")
        return unsigned

    def remove_unsigned(self, folders: list[Path]) -> None:
        """Remove checkpoint folders no signed state refers to, and copies cut short (after :meth:`verify`)."""
        for folder in folders:
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            else:
                folder.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# Signing while Ray runs


def _detached() -> Any:
    from ray.tune import Callback

    return Callback()


def signing_callback(manifest: Manifest) -> Any:
    """A :class:`ray.tune.Callback` that signs each checkpoint and each snapshot of Ray's state."""
    from ray.tune import Callback

    class SigningCallback(Callback):
        def __init__(self) -> None:
            self.trials: list | None = None

        def __reduce__(self) -> Any:
            # Ray pickles callbacks into ray/tuner.pkl: the key stays out of it
            return (_detached, ())

        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            self.trials = trials  # Ray's own list: trials added later are in it at the snapshot

        def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
            if getattr(checkpoint, "path", None):
                manifest.vouch_checkpoint(Path(checkpoint.path))

        def get_state(self) -> None:
            # Ray calls this while it saves a snapshot: its state files are in the staging
            # folder, not yet copied into ray/. An error here stops that copy.
            if manifest.copies_signed:
                return None  # each file is signed as it is copied into ray/ (not twice)
            if not self.trials:
                raise RuntimeError("scalehp cannot sign this snapshot yet (no trial known)")
            manifest.vouch_snapshot(Path(self.trials[0].storage.experiment_driver_staging_path))
            return None

    return SigningCallback()
