"""The L2 order book (numba kernels in :mod:`workbench.book.nb`, facade in :mod:`workbench.book.book`) and the
Binance snapshot-plus-diff synchronisation (:mod:`workbench.book.sync`). No I/O here."""

from workbench.book.book import BookRecord, L2Book, TopOfBook
from workbench.book.sync import BookSync, Diff, SyncState
from workbench.book.view import BOOK_LEVELS, BookLevelsView

__all__ = ["BOOK_LEVELS", "BookLevelsView", "BookRecord", "BookSync", "Diff", "L2Book", "SyncState", "TopOfBook"]
