"""Evaluates versions, specifiers and markers with the real `packaging`, for differential tests.

Input (JSON on stdin): {"versions": [str], "specs": [[spec, version]], "markers": [[marker, [extras], [groups]]],
                        "env": {name: value}}
Output (JSON): {"versions": [normalized or null], "order": [index, ...] (valid versions sorted),
                "equal_next": [bool] (whether each sorted version equals the next),
                "specs": [true/false/null], "markers": [true/false/"error"]}
"""

import json
import sys

from packaging.markers import Marker
from packaging.specifiers import Specifier
from packaging.version import InvalidVersion, Version

data = json.load(sys.stdin)

versions = []
parsed = []
for s in data["versions"]:
    try:
        v = Version(s)
        versions.append(str(v))
        parsed.append(v)
    except InvalidVersion:
        versions.append(None)
        parsed.append(None)

valid = [i for i, v in enumerate(parsed) if v is not None]
order = sorted(valid, key=lambda i: parsed[i])
equal_next = [parsed[a] == parsed[b] for a, b in zip(order, order[1:])]

specs = []
for spec, version in data["specs"]:
    try:
        specs.append(Specifier(spec).contains(Version(version), prereleases=True))
    except Exception:
        specs.append(None)

markers = []
for text, extras, groups in data["markers"]:
    try:
        m = Marker(text)
        results = []
        for extra in extras or [""]:
            env = dict(data["env"])
            env["extra"] = extra
            env["extras"] = frozenset(extras)
            env["dependency_groups"] = frozenset(groups)
            results.append(m.evaluate(env))
        markers.append(any(results))
    except Exception:
        markers.append("error")

json.dump(
    {"versions": versions, "order": order, "equal_next": equal_next, "specs": specs, "markers": markers},
    sys.stdout,
)
