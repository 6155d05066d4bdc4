"""The evolutionary search of `tte search` (:mod:`tte.search`): the space of schemes (a bias depth k and a measured
channel ratio or nothing per candidate layer), its score (the measured contributions, summed), feasibility by the
planner's figures and memory's monotonicity, the evolution itself, and the finalists that `tte search` fine-tunes
whole before it chooses."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .search import Planner

Key = tuple  # (k, ((layer, ratio), ...)) with layers ascending


# -- the evolutionary search ----------------------------------------------------------------------------------------
@dataclass
class Space:
    """Genes: k in [0, kmax], then per candidate layer an index into (no update, its measured ratios...)."""

    n: int
    kmax: int
    layers: list[int]
    choices: list[list[float]]
    bias_k: list[int]  # the bias curve: k (0 first) and contribution
    bias_gain: list[float]
    gain: dict[tuple[int, float], float]

    def key(self, genes: tuple) -> Key:
        return self.make(genes[0], {self.layers[j]: self.choices[j][c - 1] for j, c in enumerate(genes[1:]) if c})

    def make(self, k: int, weights: dict[int, float]) -> Key:
        k = max([k] + [self.n - layer for layer in weights])  # a weight-trained layer's bias trains too
        return k, tuple(sorted(weights.items()))

    def moves(self, key: Key) -> list[Key]:
        """The keys one gene away: k + 1, and each layer's weights at another measured ratio or not at all."""
        k, weights = key
        out = [(k + 1, weights)] if k < self.kmax else []
        for layer, choices in zip(self.layers, self.choices):
            for r in [0.0, *choices]:
                if r != dict(weights).get(layer, 0.0):
                    w = {**dict(weights), layer: r}
                    out.append(self.make(k, {i: x for i, x in w.items() if x}))
        return out

    def score(self, key: Key) -> float:
        k, weights = key
        return float(np.interp(k, self.bias_k, self.bias_gain)) + sum(self.gain[w] for w in weights)

    def vector(self, key: Key) -> np.ndarray:
        v = np.zeros(1 + len(self.layers))
        v[0] = key[0]
        for layer, ratio in key[1]:
            v[1 + self.layers.index(layer)] = ratio
        return v


class Feasibility:
    """Whether a key fits: by the planner, or by memory's monotonicity from the keys planned so far (a scheme that
    trains no more than one that fits -- every bias layer and channel ratio at most its -- is taken to fit, one that
    trains at least as much as one that does not fit is taken not to).  The chosen scheme is planned in the end."""

    def __init__(self, space: Space, planner: Planner):
        self.space, self.planner = space, planner
        self.rows = {True: np.zeros((0, 1 + len(space.layers))), False: np.zeros((0, 1 + len(space.layers)))}

    def known(self, key: Key) -> bool | None:
        if key in self.planner.figures:
            return self.planner.fits(key)
        v = self.space.vector(key)
        if np.any(np.all(self.rows[False] <= v, axis=1)):
            return False
        if np.any(np.all(v <= self.rows[True], axis=1)):
            return True
        return None

    def learn(self, keys) -> None:
        """Plan the keys that are not known yet (one batch, on the workers) and remember them, in order."""
        todo = [k for k in dict.fromkeys(keys) if self.known(k) is None]
        self.planner.prefetch(todo)
        for k in todo:
            fits = self.planner.fits(k)
            self.rows[fits] = np.vstack([self.rows[fits], self.space.vector(k)])

    def __call__(self, key: Key) -> bool:
        if (fits := self.known(key)) is None:
            self.learn([key])
            fits = self.planner.fits(key)
        return fits


def evolve(space: Space, planner: Planner, rng: np.random.Generator, population: int, generations: int,
           progress=None, parent_ratio: float = 0.25, mutation_ratio: float = 0.5, mutate_prob: float = 0.1,
           attempts: int = 50, rounds: int = 20, batch: int = 8) -> Key:
    """The best key that fits: the highest score, then the fewest bias layers, then the fewest channels; improved
    one gene at a time (at most ``rounds`` times) while that raises the score and fits.

    Each generation's children are drawn, then planned in one batch (the workers plan in parallel); a child that
    does not fit is drawn again (at most ``attempts`` times), one that ranks below every parent is never selected
    and is not planned.  The batches do not depend on the number of workers, so neither does the result."""
    sizes = [len(c) + 1 for c in space.choices]
    fits = Feasibility(space, planner)
    seen: set[Key] = set()  # the keys that fit (planned, or by monotonicity)

    def rank(key: Key):
        return -space.score(key), key[0], sum(r for _, r in key[1]), key

    def draw(makers: list, floor=None) -> list[tuple[Key, tuple]]:
        """One child of each maker (a function drawing genes): those that fit, in the makers' order."""
        out: dict[int, tuple[Key, tuple]] = {}
        pending = list(range(len(makers)))
        for _ in range(attempts):
            if not pending:
                break
            genes = {i: makers[i]() for i in pending}
            keys = {i: space.key(genes[i]) for i in pending}
            skip = {i for i in pending if keys[i] not in seen and floor is not None and rank(keys[i]) > floor}
            fits.learn([keys[i] for i in pending if i not in skip and keys[i] not in seen])
            for i in pending:
                if i not in skip and (keys[i] in seen or fits(keys[i])):
                    seen.add(keys[i])
                    out[i] = keys[i], genes[i]
            pending = [i for i in pending if i not in out and i not in skip]
        return [out[i] for i in sorted(out)]

    def random_genes() -> tuple:
        density = rng.uniform(0, 0.3)
        return (int(rng.integers(0, space.kmax + 1)),
                *(int(rng.integers(1, s)) if rng.random() < density else 0 for s in sizes))

    def mutate(genes: tuple) -> tuple:
        k = int(rng.integers(0, space.kmax + 1)) if rng.random() < mutate_prob else genes[0]
        return (k, *(int(rng.integers(0, s)) if rng.random() < mutate_prob else g for g, s in zip(genes[1:], sizes)))

    def cross(a: tuple, b: tuple) -> tuple:
        return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))

    # the first population: the measured bias-only points, then random genes
    genomes = dict(draw([lambda k=k: (min(k, space.kmax), *[0] * len(sizes)) for k in space.bias_k]))
    for _ in range(attempts):
        if len(genomes) >= population:
            break
        for key, genes in draw([random_genes] * (population - len(genomes))):
            genomes.setdefault(key, genes)
    for gen in range(generations):
        parents = sorted(genomes, key=rank)[:max(2, int(population * parent_ratio))]
        pool = [genomes[p] for p in parents]
        mutations = int(population * mutation_ratio) if len(pool) > 1 else population

        def child(i: int, pool=pool, mutations=mutations):
            if i < mutations:
                return lambda: mutate(pool[int(rng.integers(len(pool)))])
            return lambda: cross(*(pool[int(j)] for j in rng.choice(len(pool), 2, replace=False)))

        genomes = {p: genomes[p] for p in parents}  # a child ranked below every parent is never selected
        for key, genes in draw([child(i) for i in range(population - len(parents))], rank(parents[-1])):
            genomes.setdefault(key, genes)
        if progress is not None:
            progress("search", gen + 1, generations)
    best = next(key for key in sorted(seen, key=rank) if planner.fits(key))  # (0, ()) fits: checked first
    for _ in range(rounds):  # then one gene at a time while that gains and fits (a small k step, most often)
        better = sorted((m for m in space.moves(best) if space.score(m) > space.score(best)), key=rank)
        found = None
        for at in range(0, len(better), batch):
            fits.learn(better[at:at + batch])
            if (found := next((m for m in better[at:at + batch] if fits(m) and planner.fits(m)), None)) is not None:
                break
        if found is None:
            break
        best = found
    return best


def finalists(space: Space, planner: Planner, best: Key, count: int) -> list[Key]:
    """The schemes `tte search` fine-tunes whole before it chooses (at most ``count``): the evolution's ``best``, then
    points of a chain of simpler schemes.  The chain starts from the biases of the measured k with the highest bias
    contribution and adds the layers whose weights contributed, the largest contribution first, each at its best
    measured ratio, keeping a layer when the scheme still fits (the planner's figure).  Summed contributions favor
    many parts measured alone; a few of the best whole layers, the shape of the published schemes, often learn as
    well together, and only a joint fine-tune tells which."""
    out = [best]
    if count <= 1:
        return out
    top = max(range(len(space.bias_k)), key=lambda j: (space.bias_gain[j], -space.bias_k[j]))
    best_ratio = {}
    for (layer, ratio), gain in space.gain.items():
        if gain > 0 and gain > best_ratio.get(layer, (0.0, 0.0))[0]:
            best_ratio[layer] = (gain, ratio)
    chain, weights = [], {}
    for layer in sorted(best_ratio, key=lambda i: (-best_ratio[i][0], -i)):
        key = space.make(space.bias_k[top], {**weights, layer: best_ratio[layer][1]})
        if planner.fits(key):
            weights[layer] = best_ratio[layer][1]
            chain.append(key)
    picks = sorted({round(len(chain) * j / (count - 1)) for j in range(1, count)} - {0})
    for key in (chain[m - 1] for m in picks):
        if key not in out:
            out.append(key)
    return out


def choose(correct: list[int], tested: int, sram: list[int]) -> int:
    """The finalist `tte search` keeps (its index), by the one-standard-error rule of model selection: of the
    finalists whose held-out score is within one standard error of the best score, the one that needs the least
    SRAM (ties: the higher score, then the earlier finalist).  The standard error is the binomial one of the best
    score, ``sqrt(c (n - c) / n)`` samples for ``c`` of ``n`` correct (about 5 of 1000 at 97 %): finalists closer
    than that are not told apart by their scores, and memory is what the scheme is searched to save."""
    best = max(correct)
    se = math.sqrt(best * (tested - best) / tested) if tested else 0.0
    within = [j for j, c in enumerate(correct) if c >= best - se]
    return min(within, key=lambda j: (sram[j], -correct[j], j))
