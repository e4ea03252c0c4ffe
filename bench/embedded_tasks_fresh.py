"""A fresh held-out set of agent tasks for ``bench/embedded.py``, written blind: its author never saw
the embedded profile's instructions, and whoever tunes them must not see these tasks. Two small
projects unlike ``PROJECT`` and ``INVENTORY``, and two tasks per category.

    python bench/embedded_tasks_fresh.py    # self-test: each check fails before and passes after a
                                            # correct solution (``SOLUTIONS``), no model involved
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from embedded_tasks import (
    Check,
    Outcome,
    Task,
    both,
    file_is,
    file_lacks_has,
    script_passes,
    self_test,
    text_has,
    text_has_any,
)

# A weather-station logger: a package in a subdirectory, a CSV with commented-out rows, and a check
# script that fails because mean() uses floor division.
TIDEWATCH = {
    "README.md": (
        "# tidewatch\n\nLogs hourly temperatures from a coastal weather station and reports\n"
        "the daily mean and range.\n\nRun `python3 report.py`.\n"
    ),
    "station/__init__.py": '"""Helpers for the weather station."""\n',
    "station/units.py": (
        "def c_to_f(celsius):\n    return celsius * 9 / 5 + 32\n\n\n"
        "def f_to_c(fahrenheit):\n    return (fahrenheit - 32) * 5 / 9\n"
    ),
    "station/stats.py": (
        "def mean(readings):\n    return sum(readings) // len(readings)\n\n\n"
        "def daily_range(readings):\n    return max(readings) - min(readings)\n"
    ),
    "report.py": (
        "from station.stats import daily_range, mean\nfrom station.units import c_to_f\n\ntemps = []\n"
        'with open("readings.csv") as f:\n    for line in f:\n        if line.startswith(("#", "hour")):\n'
        '            continue\n        temps.append(float(line.split(",")[1]))\n\n'
        'print(f"mean {c_to_f(mean(temps)):.1f} F, range {daily_range(temps):.1f} C")\n'
    ),
    "alerts.py": (
        "from station.units import c_to_f\n\nFROST_F = 32\n\n\n"
        "def frost_warning(temp_c):\n    return c_to_f(temp_c) <= FROST_F\n"
    ),
    "check_stats.py": (
        "from station.stats import daily_range, mean\n\n"
        "assert mean([1, 2]) == 1.5, 'mean is off'\nassert daily_range([4, 9, 6]) == 5, 'range is off'\n"
        "print('stats ok')\n"
    ),
    "readings.csv": (
        "hour,temp_c\n00,11.2\n# sensor offline 01-02\n03,10.4\n04,10.1\n05,10.6\n# recalibrated\n"
        "06,12.0\n07,13.4\n08,14.8\n"
    ),
}

# A vet clinic's helper: billing with a discount bug, a JSON list of pets, and text templates in a
# subdirectory (one of which shares the clinic's phone number with the README).
PAWPAL = {
    "README.md": (
        "# pawpal\n\nAppointment and billing helper for a small veterinary clinic.\n"
        "Questions: call the front desk at 555-0142.\n"
    ),
    "clinic.py": (
        "VACCINE_INTERVAL = 365  # days\n\n\ndef needs_vaccine(days_since_shot):\n"
        "    return days_since_shot >= VACCINE_INTERVAL\n\n\ndef greeting(pet, owner):\n"
        '    return f"Hi {owner}, we look forward to seeing {pet}."\n'
    ),
    "billing.py": (
        "VISIT_FEE = 45\n\n\ndef invoice_total(prices, discount=0.0):\n    total = sum(prices)\n"
        "    return total * discount\n\n\ndef with_visit_fee(prices):\n    return [VISIT_FEE, *prices]\n"
    ),
    "test_billing.py": (
        "from billing import invoice_total, with_visit_fee\n\n"
        "assert invoice_total([40, 60], discount=0.25) == 75\n"
        "assert invoice_total(with_visit_fee([15])) == 60\nprint('all good')\n"
    ),
    "pets.json": (
        "[\n"
        '  {"name": "Biscuit", "species": "dog", "age": 4},\n'
        '  {"name": "Miso", "species": "cat", "age": 2},\n'
        '  {"name": "Pepper", "species": "rabbit", "age": 1},\n'
        '  {"name": "Olive", "species": "cat", "age": 11},\n'
        '  {"name": "Rex", "species": "dog", "age": 6},\n'
        '  {"name": "Tofu", "species": "cat", "age": 5},\n'
        '  {"name": "Juniper", "species": "parrot", "age": 8}\n'
        "]\n"
    ),
    "templates/reminder.txt": (
        "Checkup reminder for {pet}\n\nHi {owner}, {pet} is due for an annual checkup.\n"
        "Book the checkup online or call 555-0142.\n"
    ),
    "templates/invoice.txt": "Invoice for {owner}\nPet: {pet}\nTotal due: {total}\n",
}


def json_file_is(name: str, expected: object) -> Check:
    """The file parses as JSON equal to ``expected`` (any layout or key order)."""

    def check(ws: Path, out: Outcome) -> bool:
        path = ws / name
        try:
            return path.is_file() and json.loads(path.read_text()) == expected
        except ValueError:
            return False

    return check


def file_is_ignoring_case(name: str, text: str) -> Check:
    """Like ``file_is``, but a capital letter more or less is not held against the answer."""

    def check(ws: Path, out: Outcome) -> bool:
        path = ws / name
        return path.is_file() and path.read_text().strip().lower() == text.strip().lower()

    return check


REMINDER_HYPHENATED = (
    PAWPAL["templates/reminder.txt"].replace("checkup", "check-up").replace("Checkup", "Check-up")
)

FRESH: list[Task] = [
    Task("explain", "New here — what is this repo for, in a nutshell?",
         text_has_any("temperature", "weather"), files=TIDEWATCH),
    Task("explain", "When does needs_vaccine in clinic.py return True?",
         text_has_any("365", "year"), files=PAWPAL),
    Task("create", "Set up a notes/ directory and put a todo.md in it with a single line: - calibrate the sensor",
         file_is("notes/todo.md", "- calibrate the sensor"), ("notes/todo.md",), files=TIDEWATCH),
    Task("create", 'Add a config.json at the top of the repo with two keys: clinic_name set to "Pawpal" and '
         "open_hour set to the number 9.",
         json_file_is("config.json", {"clinic_name": "Pawpal", "open_hour": 9}), ("config.json",), files=PAWPAL),
    Task("count", "readings.csv has a header and a few commented-out lines starting with #. Leaving those aside, "
         "how many real temperature readings does it hold?",
         text_has_any("7", "seven"), files=TIDEWATCH),
    Task("count", "Quick one: of the animals in pets.json, how many are cats?",
         text_has_any("3", "three"), files=PAWPAL),
    Task("find", "Before I change c_to_f I need to know what depends on it. Which modules use it, apart from the "
         "one that defines it?",
         text_has("report.py", "alerts.py"), files=TIDEWATCH),
    Task("find", "The front-desk number 555-0142 is changing. Point me to every file where it appears.",
         text_has("readme", "reminder.txt"), files=PAWPAL),
    Task("rename", "The parameter name celsius in station/units.py is too long for our style; call it deg_c "
         "instead, throughout that module.",
         both(file_lacks_has("station/units.py", "celsius", "deg_c"),
              script_passes("-c", "from station.units import c_to_f, f_to_c; print(c_to_f(deg_c=100), f_to_c(212))",
                            prints="212.0 100.0")),
         ("station/units.py",), files=TIDEWATCH),
    Task("rename", 'Our vet wants "check-up" spelled with a hyphen. Please fix each checkup in '
         "templates/reminder.txt (keep the capital letter where there is one).",
         file_is_ignoring_case("templates/reminder.txt", REMINDER_HYPHENATED), ("templates/reminder.txt",),
         files=PAWPAL),
    Task("fix", "check_stats.py dies with an AssertionError. Track the bug down in the station package and "
         "repair it — leave the check script itself alone.",
         script_passes("check_stats.py", prints="stats ok"), ("station/stats.py",), files=TIDEWATCH),
    Task("fix", "Invoices come out wrong whenever a discount is given; python3 test_billing.py shows it. "
         "Could you sort out billing.py?",
         script_passes("test_billing.py", prints="all good"), ("billing.py",), files=PAWPAL),
]  # fmt: skip

# A correct solution per task (index in FRESH), run with bash in the workspace; for the tasks judged
# by the answer, its output stands in for the answer.
SOLUTIONS: dict[int, str] = {
    0: "sed -n 3,4p README.md",
    1: "grep -n VACCINE_INTERVAL clinic.py",
    2: "mkdir -p notes && printf -- '- calibrate the sensor\\n' > notes/todo.md",
    3: """printf '{"clinic_name": "Pawpal", "open_hour": 9}\\n' > config.json""",
    4: "tail -n +2 readings.csv | grep -vc '^#'",
    5: 'grep -c \'"species": "cat"\' pets.json',
    6: "grep -rlw c_to_f --include='*.py' . | grep -v units.py",
    7: "grep -rl --exclude-dir=.git 555-0142 .",
    8: "sed -i 's/celsius/deg_c/g' station/units.py",
    9: "sed -i 's/checkup/check-up/g; s/Checkup/Check-up/g' templates/reminder.txt",
    10: "sed -i 's|//|/|' station/stats.py",
    11: "sed -i 's/return total \\* discount/return total * (1 - discount)/' billing.py",
}

# Plausible wrong answers that the answer checks must reject.
WRONG: dict[int, str] = {
    0: "It is a small demo project.",
    1: "It returns True when the pet needs a vaccine.",
    4: "readings.csv has 10 lines; 9 without the header, 8 without the comments.",
    5: "There are 7 animals in pets.json.",
    6: "c_to_f is defined in station/units.py.",
    7: "It appears in README.md.",
}


def _self_test() -> int:
    for files in (TIDEWATCH, PAWPAL):
        for name, text in files.items():
            assert len(text.encode()) < 1000, name
    for task in FRESH:
        if task.category == "rename":
            assert task.touches[0] in task.files
    assert PAWPAL["templates/reminder.txt"].lower().count("checkup") >= 2
    assert TIDEWATCH["station/units.py"].count("celsius") >= 2
    return self_test(FRESH, SOLUTIONS, WRONG)


if __name__ == "__main__":
    sys.exit(_self_test())
