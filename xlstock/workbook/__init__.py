"""The sheet layer: the workbook layout (``layout``) over one adapter per engine: the
file itself, read and patched as a package of parts (``xlsx_file``), and xlwings on live
Excel (``xlwings_adapter``)."""
