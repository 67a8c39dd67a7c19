"""The Excel-buttons builder: turns a workbook into an ``.xlsm`` with a VBA project and
the Sync, Preview and Publish buttons on sheet Stock, or brings one up to date.

- :mod:`~xlstock.macros.vba_source`: the VBA modules (xlwings' from the installed
  xlwings, xlstock's own), and how a workbook's project is refreshed;
- :mod:`~xlstock.macros.ovba` and :mod:`~xlstock.macros.cfb`: the ``vbaProject.bin``
  file format ([MS-OVBA] inside a [MS-CFB] compound file);
- :mod:`~xlstock.macros.package`: the ``.xlsx``/``.xlsm`` package edited as parts
  (relationships, content types, code names, the VBA part);
- :mod:`~xlstock.macros.buttons`: the three Form Control buttons on sheet Stock;
- :mod:`~xlstock.macros.install`: ``xlstock new PATH.xlsm`` and ``xlstock buttons``.

It sits above the workbook layer (it writes files through
:func:`xlstock.workbook.files.write_atomic` and locks them with
:mod:`xlstock.workbook.locking`); Sync, Preview and Publish never import it.
"""
