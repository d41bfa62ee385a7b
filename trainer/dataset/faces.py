"""Face detection with OpenCV's Haar cascade, whose model file ships inside the opencv wheel."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from trainer.dataset.images import Analysis

_BASE_WINDOW = 20  # a little under the cascade's 24 px window, which detectMultiScale still scans


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in full-image pixel coordinates: left, top, right, bottom (exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        """Right minus left."""
        return self.right - self.left

    @property
    def height(self) -> int:
        """Bottom minus top."""
        return self.bottom - self.top

    def as_list(self) -> list[int]:
        """``[left, top, right, bottom]``, the JSON form."""
        return [self.left, self.top, self.right, self.bottom]


def default_cascade_path() -> Path:
    """The frontal-face cascade bundled with opencv-python(-headless)."""
    return Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]


class FaceDetector:
    """Finds the largest frontal face in an :class:`Analysis` image.

    OpenCV cascade classifiers must not be shared between threads, so each thread that uses a detector gets
    its own classifier (loaded on first use).
    """

    def __init__(
        self,
        cascade_path: Path | None = None,
        *,
        detect_side: int = 320,
        coarse_side: int | None = 160,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_face_fraction: float = 0.06,
    ) -> None:
        self._path = cascade_path or default_cascade_path()
        if not self._path.is_file():
            raise FileNotFoundError(f"face cascade not found: {self._path}")
        sides = [detect_side] if coarse_side is None or coarse_side >= detect_side else [coarse_side, detect_side]
        self._sides = tuple(sides)
        self._scale_factor = scale_factor
        self._min_neighbors = min_neighbors
        self._min_face_fraction = min_face_fraction
        self._local = threading.local()

    def _classifier(self) -> cv2.CascadeClassifier:
        classifier: cv2.CascadeClassifier | None = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = cv2.CascadeClassifier(str(self._path))
            if classifier.empty():
                raise RuntimeError(f"could not load face cascade {self._path}")
            self._local.classifier = classifier
        return classifier

    def largest_face(self, analysis: Analysis) -> Box | None:
        """Return the largest face found, in full-image coordinates, or None.

        A coarse pass on a tiny copy (longer side ``coarse_side``) finds large faces cheaply; only when it
        finds none does a finer pass run on a copy whose longer side is ``detect_side``. Faces smaller
        than ``min_face_fraction`` of the shorter side are ignored (training photos show the face large).
        """
        for side in self._sides:
            small = analysis.downscaled(side)
            face = self._detect(small)
            if face is not None:
                x, y, w, h = face
                s = small.scale
                return Box(round(x * s), round(y * s), round((x + w) * s), round((y + h) * s))
        return None

    def _detect(self, small: Analysis) -> tuple[int, int, int, int] | None:
        shorter = min(small.grey.shape[:2])
        min_side = max(_BASE_WINDOW, int(shorter * self._min_face_fraction))
        found = self._classifier().detectMultiScale(
            small.grey,
            scaleFactor=self._scale_factor,
            minNeighbors=self._min_neighbors,
            minSize=(min_side, min_side),
        )
        faces = np.asarray(found).reshape(-1, 4)
        if len(faces) == 0:
            return None
        x, y, w, h = (int(v) for v in max(faces, key=lambda f: int(f[2]) * int(f[3])))
        return x, y, w, h
