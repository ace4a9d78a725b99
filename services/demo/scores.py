"""Plausible synthetic results for the demo's SSRs: scale-score ranges, cut scores and levels.

Smarter Balanced ELA and mathematics use the published 2-digit-thousands scales (e.g. grade 5 ELA
2201-2701) with three cut scores per grade separating Standard Not Met / Nearly Met / Met /
Exceeded; CAST (science, grades 5, 8 and high school) uses its own per-grade scale; the Summative
ELPAC reports an overall scale score (1150-1950) with levels 1-4 and oral/written performance
levels. The cut scores below are close to the published ones, which is all a demo needs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from services.demo.ssr_pdf import ScoreLine


@dataclass(frozen=True, slots=True)
class Scale:
    """A scale's lowest and highest score and the three cuts: Nearly Met, Met, Exceeded."""

    low: int
    nearly: int
    met: int
    exceeded: int
    high: int

    def level(self, score: int) -> int:
        """1 (Not Met) to 4 (Exceeded)."""
        return 1 + sum(score >= cut for cut in (self.nearly, self.met, self.exceeded))

    def draw(self, ability: float) -> int:
        """A score for a student of ``ability`` (standard normal), centred just under Met."""
        spread = (self.exceeded - self.nearly) / 1.5
        score = round(self.met - spread * 0.1 + ability * spread)
        return min(self.high, max(self.low, score))


ELA = {
    3: Scale(2114, 2367, 2432, 2490, 2623),
    4: Scale(2131, 2416, 2473, 2533, 2663),
    5: Scale(2201, 2442, 2502, 2582, 2701),
    6: Scale(2210, 2457, 2531, 2618, 2724),
    7: Scale(2258, 2479, 2552, 2649, 2745),
    8: Scale(2288, 2487, 2567, 2668, 2769),
    11: Scale(2299, 2493, 2583, 2682, 2795),
}
MATH = {
    3: Scale(2189, 2381, 2436, 2501, 2621),
    4: Scale(2204, 2411, 2485, 2549, 2659),
    5: Scale(2219, 2455, 2528, 2579, 2700),
    6: Scale(2235, 2473, 2552, 2610, 2748),
    7: Scale(2250, 2484, 2567, 2635, 2778),
    8: Scale(2265, 2504, 2586, 2653, 2802),
    11: Scale(2280, 2543, 2628, 2718, 2862),
}
CAST = {
    5: Scale(100, 189, 200, 213, 300),
    8: Scale(200, 288, 300, 315, 400),
    11: Scale(300, 387, 400, 416, 500),
}
ELPAC_OVERALL = {
    3: Scale(1150, 1424, 1470, 1526, 1950),
    4: Scale(1150, 1448, 1493, 1545, 1950),
    5: Scale(1150, 1459, 1506, 1559, 1950),
    6: Scale(1150, 1467, 1515, 1567, 1950),
    7: Scale(1150, 1475, 1526, 1578, 1950),
    8: Scale(1150, 1485, 1535, 1591, 1950),
    11: Scale(1150, 1502, 1555, 1615, 1950),
}

CAASPP_LEVELS = ("Standard Not Met", "Standard Nearly Met", "Standard Met", "Standard Exceeded")
ELPAC_LEVELS = (
    "Level 1 (Minimally Developed)",
    "Level 2 (Somewhat Developed)",
    "Level 3 (Moderately Developed)",
    "Level 4 (Well Developed)",
)
DOMAIN_LEVELS = (
    "Beginning to Develop",
    "Somewhat Developed",
    "Moderately Developed",
    "Well Developed",
)


def _caaspp_line(subject: str, scale: Scale, ability: float, grade: int) -> ScoreLine:
    score = scale.draw(ability)
    note = f"Grade {grade} scale {scale.low}–{scale.high}; Standard Met from {scale.met}"
    return ScoreLine(subject, score, CAASPP_LEVELS[scale.level(score) - 1], note)


def caaspp(rng: random.Random, grade: int, ability: float) -> tuple[ScoreLine, ...]:
    """ELA and mathematics, plus science (CAST) in grades 5, 8 and 11."""
    math_ability = 0.8 * ability + 0.6 * rng.gauss(0, 1)
    lines = [
        _caaspp_line("English Language Arts/Literacy", ELA[grade], ability, grade),
        _caaspp_line("Mathematics", MATH[grade], math_ability, grade),
    ]
    if grade in CAST:
        science = 0.7 * ability + 0.7 * rng.gauss(0, 1)
        lines.append(_caaspp_line("Science (CAST)", CAST[grade], science, grade))
    return tuple(lines)


def elpac(rng: random.Random, grade: int, ability: float) -> tuple[ScoreLine, ...]:
    """The overall score and level, then oral and written language on the same scale."""
    scale = ELPAC_OVERALL[grade]
    overall = scale.draw(ability)
    lines = [ScoreLine("Overall", overall, ELPAC_LEVELS[scale.level(overall) - 1], "")]
    for domain in ("Oral Language", "Written Language"):
        score = min(scale.high, max(scale.low, overall + round(rng.gauss(0, 35))))
        lines.append(ScoreLine(domain, score, DOMAIN_LEVELS[scale.level(score) - 1], ""))
    return tuple(lines)
