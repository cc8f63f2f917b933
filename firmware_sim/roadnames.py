"""Chinese-style road, square and bridge names for the generated city, unique within a city.

A name is a two-character word (common in Chinese street names: 解放, 建设, 友谊 ... or a generated pair
of auspicious characters) plus a suffix that says the road class: 大道 for trunk roads, 路 / 东路 for
secondary roads, 一路 / 街 / 巷 for branches, 广场 / 公园 for public places.
"""

from __future__ import annotations

import numpy as np

_WORDS = (  # noqa: SIM905 - a block of words reads better than a list of quoted ones
    "解放 建设 中山 新华 发展 友谊 和平 民主 民族 民生 青年 胜利 幸福 光明 建安 珞喻 武珞 雄楚 "
    "鹦鹉 晴川 汉阳 江汉 沿江 临江 滨江 青山 洪山 关山 光谷 东湖 南湖 沙湖 月湖 墨水 琴台 黄鹤 "
    "紫阳 首义 彭刘 积玉 常青 唐家 后湖 二七 三阳 黄浦 京汉 中北 徐东 和平 工业 冶金 钢城 友好"
).split()
_FIRST = "新光建民和永长东西南北中华兴胜利友平安康福德仁义文武汉江湖山水花园青紫金宝黄红晴鹤松柏梅竹兰菊"
_SECOND = "华安兴平和康宁乐泰丰盛荣昌明德新阳春秀林桥湾港口岭塘湖园苑坊台城关门庙街府"

#: Suffixes by road class (trunk, secondary, branch, public_place); each class has its own, so names of
#: different classes never collide.
SUFFIXES: tuple[tuple[str, ...], ...] = (
    ("大道", "大街"),
    ("路", "东路", "西路", "南路", "北路", "中路"),
    ("一路", "二路", "三路", "四路", "五路", "六路", "七路", "八路", "街", "巷", "横路", "支路"),
    ("广场", "公园", "江滩", "步行街", "游园"),
)

_BRIDGES = (  # noqa: SIM905
    "长江大桥 长江二桥 鹦鹉洲长江大桥 杨泗港长江大桥 二七长江大桥 晴川桥 江汉桥 月湖桥 知音桥 "
    "天兴洲长江大桥 白沙洲长江大桥 青山长江大桥 江汉一桥 江汉二桥 江汉三桥 古田桥"
).split()


def _words() -> tuple[str, ...]:
    pairs = [a + b for a in _FIRST for b in _SECOND if a != b]
    seen = dict.fromkeys(_WORDS)
    seen.update(dict.fromkeys(pairs))
    return tuple(seen)


WORDS = _words()
_KNOWN_WORDS = len(dict.fromkeys(_WORDS))


def road_names(road_class: np.ndarray, rng: np.random.Generator) -> list[str]:
    """A unique name for each road, by class (indices into SUFFIXES)."""
    names: list[str] = [""] * len(road_class)
    for cls, suffixes in enumerate(SUFFIXES):
        where = np.flatnonzero(road_class == cls)
        space = len(WORDS) * len(suffixes)
        if len(where) > space:
            raise ValueError(f"{len(where)} roads of one class, only {space} distinct names")
        # Well-known words come first in WORDS: a small city uses only them, so it reads like a real one.
        known = _KNOWN_WORDS * len(suffixes)
        picks = rng.choice(known if 2 * len(where) <= known else space, size=len(where), replace=False)
        for slot, pick in zip(where.tolist(), picks.tolist(), strict=True):
            word, suffix = divmod(pick, len(suffixes))
            names[slot] = WORDS[word] + suffixes[suffix]
    return names


def bridge_names(count: int, rng: np.random.Generator) -> list[str]:
    """Names for ``count`` bridges: Wuhan-like first, then generated ``<word>大桥``."""
    known = list(_BRIDGES)
    rng.shuffle(known)
    extra = [w + "大桥" for w in WORDS if w + "大桥" not in known]
    return (known + extra)[:count]
