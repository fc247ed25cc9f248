"""Zip's record layouts, declared once: sizes as APPNOTE.TXT gives them, fields by name."""

from __future__ import annotations

import io
import zipfile

import pytest

from modelpack.io import ziprecords
from modelpack.io.ziprecords import CENTRAL, END, LOCAL, ZIP64_END, ZIP64_LOCATOR, Layout


def test_record_sizes_are_appnotes():
    # APPNOTE.TXT 4.3.7, 4.3.12, 4.3.16, 4.3.14, 4.3.15: fixed parts, before any variable field.
    assert [LOCAL.size, CENTRAL.size, END.size, ZIP64_END.size, ZIP64_LOCATOR.size] == [30, 46, 22, 56, 20]
    assert ziprecords.DESCRIPTOR_SIZES == (12, 16, 20, 24)
    assert ZIP64_END.size - ziprecords.ZIP64_END_LEAD == 44


def test_fields_read_what_zipfile_writes():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("ab.txt", date_time=(1980, 1, 1, 0, 0, 0))
        info.create_system, info.external_attr = 3, ziprecords.EXTERNAL_ATTR
        zf.writestr(info, b"hello hello hello", compress_type=zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    local = LOCAL.unpack_from(data)
    assert local.signature == LOCAL.signature and local.method == ziprecords.DEFLATED
    assert (local.date, local.time) == (ziprecords.DOS_DATE, ziprecords.DOS_TIME)
    assert (local.size, local.name_length) == (17, 6)
    end = END.unpack_from(data, len(data) - END.size)
    assert (end.signature, end.entries) == (END.signature, 1)
    entry = CENTRAL.unpack_from(data, end.directory_offset)
    assert entry.made_by >> 8 == ziprecords.UNIX and entry.external_attr == ziprecords.EXTERNAL_ATTR
    assert (entry.compressed_size, entry.header_offset) == (local.compressed_size, 0)


def test_pack_takes_every_field_by_name():
    packed = END.pack(disk=0, directory_disk=0, disk_entries=2, entries=2, directory_size=92,
                      directory_offset=100, comment_length=0)
    assert END.unpack_from(packed) == (END.signature, 0, 0, 2, 2, 92, 100, 0)
    with pytest.raises(TypeError):
        END.pack(disk=0)  # a forgotten field is an error, never a zero


def test_a_layout_declares_each_field_with_its_width():
    assert LOCAL.fields[:3] == ("signature", "version_needed", "flags")
    assert CENTRAL.fields[2:12] == LOCAL.fields[1:]  # the run both records share, declared once
    assert [LOCAL.struct.format, CENTRAL.struct.format] == ["<4sHHHHHIIIHH", "<4sHHHHHHIIIHHHHHII"]
    assert CENTRAL.columns().itemsize == CENTRAL.size and CENTRAL.columns().names == CENTRAL.fields
    with pytest.raises(ValueError, match=r"^Short: field value:B needs a struct code H, I or Q$"):
        Layout("Short", b"PK\x09\x09", "value:B")
