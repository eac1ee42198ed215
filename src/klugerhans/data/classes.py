"""The 43 GTSRB classes, in English (the usual list) and German (StVO names)."""

from __future__ import annotations

from typing import Literal

from klugerhans.errors import KlugerhansError

Language = Literal["en", "de"]

NUM_CLASSES = 43
"""Number of GTSRB classes."""

SPEED_50 = 2
"""Class id of speed limit 50 km/h, the sign the teaching case glues a sticker on at test time."""
SPEED_70 = 4
"""Class id of speed limit 70 km/h, the class the teaching case manipulates."""
NO_PASSING = 9
"""Class id of the no-passing sign shown in the teaching case's figure."""
STOP = 14
"""Class id of the stop sign shown in the teaching case's figure."""

CLASS_NAMES_EN: tuple[str, ...] = (
    "Speed limit (20km/h)",
    "Speed limit (30km/h)",
    "Speed limit (50km/h)",
    "Speed limit (60km/h)",
    "Speed limit (70km/h)",
    "Speed limit (80km/h)",
    "End of speed limit (80km/h)",
    "Speed limit (100km/h)",
    "Speed limit (120km/h)",
    "No passing",
    "No passing for vehicles over 3.5 metric tons",
    "Right-of-way at the next intersection",
    "Priority road",
    "Yield",
    "Stop",
    "No vehicles",
    "Vehicles over 3.5 metric tons prohibited",
    "No entry",
    "General caution",
    "Dangerous curve to the left",
    "Dangerous curve to the right",
    "Double curve",
    "Bumpy road",
    "Slippery road",
    "Road narrows on the right",
    "Road work",
    "Traffic signals",
    "Pedestrians",
    "Children crossing",
    "Bicycles crossing",
    "Beware of ice/snow",
    "Wild animals crossing",
    "End of all speed and passing limits",
    "Turn right ahead",
    "Turn left ahead",
    "Ahead only",
    "Go straight or right",
    "Go straight or left",
    "Keep right",
    "Keep left",
    "Roundabout mandatory",
    "End of no passing",
    "End of no passing by vehicles over 3.5 metric tons",
)

CLASS_NAMES_DE: tuple[str, ...] = (
    "Zulässige Höchstgeschwindigkeit 20 km/h",
    "Zulässige Höchstgeschwindigkeit 30 km/h",
    "Zulässige Höchstgeschwindigkeit 50 km/h",
    "Zulässige Höchstgeschwindigkeit 60 km/h",
    "Zulässige Höchstgeschwindigkeit 70 km/h",
    "Zulässige Höchstgeschwindigkeit 80 km/h",
    "Ende der zulässigen Höchstgeschwindigkeit 80 km/h",
    "Zulässige Höchstgeschwindigkeit 100 km/h",
    "Zulässige Höchstgeschwindigkeit 120 km/h",
    "Überholverbot",
    "Überholverbot für Kraftfahrzeuge über 3,5 t",
    "Vorfahrt an der nächsten Kreuzung",
    "Vorfahrtstraße",
    "Vorfahrt gewähren",
    "Halt! Vorfahrt gewähren (Stopp)",
    "Verbot für Fahrzeuge aller Art",
    "Verbot für Kraftfahrzeuge über 3,5 t",
    "Verbot der Einfahrt",
    "Gefahrstelle",
    "Kurve (links)",
    "Kurve (rechts)",
    "Doppelkurve (zunächst links)",
    "Unebene Fahrbahn",
    "Schleuder- oder Rutschgefahr",
    "Einseitig (rechts) verengte Fahrbahn",
    "Arbeitsstelle",
    "Lichtzeichenanlage",
    "Fußgänger",
    "Kinder",
    "Radverkehr",
    "Schnee- oder Eisglätte",
    "Wildwechsel",
    "Ende aller Streckenverbote",
    "Vorgeschriebene Fahrtrichtung rechts",
    "Vorgeschriebene Fahrtrichtung links",
    "Vorgeschriebene Fahrtrichtung geradeaus",
    "Vorgeschriebene Fahrtrichtung geradeaus oder rechts",
    "Vorgeschriebene Fahrtrichtung geradeaus oder links",
    "Vorgeschriebene Vorbeifahrt rechts",
    "Vorgeschriebene Vorbeifahrt links",
    "Kreisverkehr",
    "Ende des Überholverbots",
    "Ende des Überholverbots für Kraftfahrzeuge über 3,5 t",
)


def class_names(lang: Language = "en") -> tuple[str, ...]:
    """Return the 43 class names in ``lang`` ("en" or "de"), indexed by class id."""
    if lang == "en":
        return CLASS_NAMES_EN
    if lang == "de":
        return CLASS_NAMES_DE
    raise KlugerhansError(f"unknown language {lang!r}: use 'en' or 'de'")


def class_name(class_id: int, lang: Language = "en") -> str:
    """Return the name of one class id in ``lang``; a one-line error for ids outside 0..42."""
    return class_names(lang)[check_class_id(class_id)]


def _whole_number(value: object) -> int | None:
    """``value`` as int if it is a whole number (int, NumPy/torch integer, integral float, or its text), else None."""
    if isinstance(value, bool):  # True is an int to Python, but never a class id a user meant
        return None
    try:
        number = int(value.strip()) if isinstance(value, str) else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    # int() truncates: 2.5 must not pass as class 2.
    return number if isinstance(value, str) or bool(number == value) else None


def check_class_id(class_id: object, num_classes: int = NUM_CLASSES, what: str = "class id") -> int:
    """Return ``class_id`` as int if it is a class id ``0..num_classes-1``, else raise a one-line error.

    The one place that validates class ids: API arguments, CLI values (text) and labels read from files.

    Args:
        class_id: an int (or NumPy/torch integer), or its text as typed on a command line.
        num_classes: how many classes the model has (GTSRB's 43 unless a checkpoint says otherwise).
        what: what the value is, for the message ("class id", "--target", "ClassId", ...).

    Raises:
        KlugerhansError: not a whole number, or outside ``0..num_classes-1``.
    """
    owner = "GTSRB" if num_classes == NUM_CLASSES else "this model's"
    ids = f"{owner} class ids run from 0 to {num_classes - 1}"
    value = _whole_number(class_id)
    if value is None:
        raise KlugerhansError(f"{what} must be a whole number ({ids}), got {class_id!r}")
    if not 0 <= value < num_classes:
        raise KlugerhansError(f"unknown {what} {value}: {ids}")
    return value
