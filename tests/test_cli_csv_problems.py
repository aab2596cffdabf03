"""The `chainrule` command on the CSV files people really have: spreadsheet-safe output, outputs
that would overwrite an input, decimal commas and other encodings, every bad row in one message,
dropping incomplete rows, and models saved from Python."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

import chainrule as cr
from chainrule import csvio
from chainrule.cli import main
from chainrule.csvio import CsvError, read_table


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def labelled(tmp_path, labels, name="d.csv"):
    """Two numeric inputs, an id column and a text target whose labels are ``labels`` (cycled)."""
    rng = np.random.default_rng(0)
    rows = [f"{i},{labels[i % len(labels)]},{rng.normal():.4f},{rng.normal():.4f}" for i in range(40)]
    return write(tmp_path / name, "id,label,a,b\n" + "\n".join(rows) + "\n")


def train(tmp_path, data, *extra, out="m.npz"):
    model = tmp_path / out
    ignore = ["--ignore", "id"] if data.read_text(encoding="utf-8").startswith("id,") else []
    assert main(["train", str(data), "--target", "label", *ignore, "--epochs", "2", "--hidden", "4",
                 "-q", "--out", str(model), *extra]) == 0
    return model


# --- 1. spreadsheet formulas ---------------------------------------------------------------------
def test_spreadsheet_safe_quotes_formula_text_but_not_numbers():
    for formula in ("=HYPERLINK(\"x\")", "+A1", "-2+3", "@SUM(A1)", "\tx", "\rx", "-cmd"):
        assert csvio.spreadsheet_safe(formula) == "'" + formula
    for plain in ("-3.5", "+2", "-1e-3", "cat", "", "a=b"):
        assert csvio.spreadsheet_safe(plain) == plain


def test_predict_output_has_no_live_formulas(tmp_path, capsys):
    data = labelled(tmp_path, ["=1+1", "@cmd", "ok"])
    data.write_text(data.read_text().replace("\n0,", "\n-5,", 1).replace("\n1,", '\n"=HYPERLINK(""x"")",', 1))
    model = train(tmp_path, data)
    capsys.readouterr()
    assert main(["predict", str(model), str(data), "--keep", "id"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    assert rows[1][0] == "-5"  # a negative number stays a number
    assert rows[2][0] == "'=HYPERLINK(\"x\")"
    assert {row[1] for row in rows[1:]} <= {"'=1+1", "'@cmd", "ok"}


# --- 2. --out naming an input -------------------------------------------------------------------
def test_out_that_names_the_input_is_refused_for_every_writing_subcommand(tmp_path, capsys):
    data = labelled(tmp_path, ["x", "y"])
    before = data.read_bytes()
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    model = train(tmp_path, data)
    model_bytes = model.read_bytes()
    cases = [["train", str(data), "--target", "label", "--out", str(link)],
             ["train", str(data), "--target", "label", "--log", str(tmp_path / "." / "d.csv")],
             ["predict", str(model), str(data), "--out", str(link)],
             ["predict", str(model), str(data), "--out", str(model)],
             ["explain", str(model), "--input", "x,1,2", "--target", "x", "--out", str(model)]]
    for argv in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "is the input file" in err, (argv, err)
    assert data.read_bytes() == before and model.read_bytes() == model_bytes


# --- 5. --keep on a model without preprocessing ------------------------------------------------
def test_keep_every_column_on_a_model_saved_from_python(tmp_path, capsys):
    net = cr.Sequential(cr.Dense(2, 1, weight=[[2.0], [3.0]], bias=[1.0]), dtype=np.float64)
    net.save(tmp_path / "py.npz")
    data = write(tmp_path / "xy.csv", "a,b\n1,2\n-1,0.5\n")
    assert main(["predict", str(tmp_path / "py.npz"), str(data), "--keep", "a,b"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows == [["a", "b", "output_0"], ["1", "2", "9.0"], ["-1", "0.5", "0.5"]]  # 2a + 3b + 1
    wide = write(tmp_path / "abc.csv", "a,b,c\n1,2,3\n")
    assert main(["predict", str(tmp_path / "py.npz"), str(wide), "--keep", "a,b,c"]) == 1
    assert "takes 2 inputs" in capsys.readouterr().err


# --- 6. decimal commas and encodings ---------------------------------------------------------------
EURO = "temp;city;label\n" + "".join(f"{36 + i % 5},{i % 10};{['Köln', 'Graz'][i % 2]};{'ab'[i % 3 == 0]}\n"
                                      for i in range(30))


def test_decimal_comma_is_read_as_numbers_with_the_option(tmp_path, capsys):
    path = write(tmp_path / "eu.csv", EURO)
    table = read_table(path, delimiter=";", decimal=",")
    assert table.numbers(0)[:3].tolist() == [36.0, 37.1, 38.2]
    model = train(tmp_path, path, "--delimiter", ";", "--decimal", ",", out="eu.npz")
    features = cr.load(model).metadata["preprocessing"]["features"]
    assert features[0] == {"name": "temp", "kind": "numeric"}
    assert main(["predict", str(model), str(path), "--delimiter", ";", "--decimal", ","]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 31
    assert main(["predict", str(model), str(path), "--delimiter", ";"]) == 1
    assert "got '36,0' (a decimal comma? pass --decimal ,)" in capsys.readouterr().err


def test_decimal_comma_without_the_option_is_warned_about(tmp_path, capsys):
    path = write(tmp_path / "eu.csv", EURO)
    train(tmp_path, path, "--delimiter", ";", out="eu.npz")
    err = capsys.readouterr().err
    assert "warning: column 'temp' looks numeric (e.g. '36,0')" in err and "--decimal ," in err
    assert "'city'" not in err  # a real text column is not warned about


def test_a_text_column_with_currency_signs_is_warned_about(tmp_path, capsys):
    rows = "".join(f"${100 + i},{'ab'[i % 2]}\n" for i in range(20))
    train(tmp_path, write(tmp_path / "p.csv", "price,label\n" + rows), out="p.npz")
    assert "warning: column 'price' looks numeric (e.g. '$100')" in capsys.readouterr().err


def test_a_cp1252_file_names_the_encodings_to_try_and_reads_with_encoding(tmp_path, capsys):
    path = write(tmp_path / "w.csv", "name,x,label\n" + "".join(f"Zoë{i % 2},{i},{'ab'[i % 2]}\n" for i in range(20)),
                 encoding="cp1252")
    # "Zoë0": the ë is byte 3 of line 2 in cp1252 (0xEB), not a UTF-8 start of a character
    with pytest.raises(CsvError, match="w.csv, line 2: is not UTF-8 text \\(.* at byte 3 of the line\\);"
                       " .*try --encoding cp1252 \\(or latin-1, utf-8-sig\\)"):
        read_table(path)
    assert read_table(path, encoding="cp1252").columns[0][:2] == ["Zoë0", "Zoë1"]
    assert main(["train", str(path), "--target", "label", "--encoding", "cp1252", "--epochs", "1", "-q",
                 "--out", str(tmp_path / "w.npz")]) == 0


# --- 7. every bad row, in file order --------------------------------------------------------------
def test_bad_rows_are_listed_in_file_order_in_one_message(tmp_path, capsys):
    rows = [f"{i},{i % 3},{'ab'[i % 2]}" for i in range(40)]
    rows[4] = "4,,a"      # line 6: a blank input
    rows[8] = "8,2,"      # line 10: a blank target
    rows[20] = "20,zz,b"  # line 22: a word in a numeric column
    path = write(tmp_path / "bad.csv", "x,y,label\n" + "\n".join(rows) + "\n")
    assert main(["train", str(path), "--target", "label", "-q", "--out", str(tmp_path / "m.npz")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "3 bad values" in err
    six, ten, twenty_two = err.index("line 6, column 2 ('y')"), err.index("line 10, column 3 ('label')"), \
        err.index("line 22, column 2 ('y'): expected a number, got 'zz'")
    assert six < ten < twenty_two and "--drop-incomplete" in err
    assert not (tmp_path / "m.npz").exists()


def test_many_bad_rows_are_cut_at_twenty(tmp_path):
    path = write(tmp_path / "many.csv", "x\n" + "".join(f"w{i}\n" if i % 2 else f"{i}\n" for i in range(100)))
    with pytest.raises(CsvError) as info:
        read_table(path).check([0])
    assert "50 bad values" in str(info.value) and "; and 30 more" in str(info.value)
    assert str(info.value).count("expected a number") == 20


def test_drop_incomplete_leaves_out_rows_with_missing_values_and_says_how_many(tmp_path, capsys):
    rows = [f"{i},{i % 3},{'ab'[i % 2]}" for i in range(40)]
    rows[4], rows[8], rows[9] = "4,,a", "8,2,", "9,NA,b"
    path = write(tmp_path / "holes.csv", "x,y,label\n" + "\n".join(rows) + "\n")
    model = tmp_path / "m.npz"
    assert main(["train", str(path), "--target", "label", "-q", "--drop-incomplete", "--epochs", "1",
                 "--out", str(model)]) == 0
    assert "dropped 3 of 40 rows with a missing value" in capsys.readouterr().err
    assert cr.load(model).metadata["training"]["data"]["rows"] == 37


def test_a_mistyped_target_gets_the_closest_column_name(tmp_path, capsys):
    path = labelled(tmp_path, ["x", "y"])
    assert main(["train", str(path), "--target", "lable", "-q"]) == 1
    assert "did you mean 'label'?" in capsys.readouterr().err


def test_predict_to_stdout_that_fails_half_way_writes_nothing(tmp_path, capsys):
    path = labelled(tmp_path, ["x", "y"])
    model = train(tmp_path, path)
    bad = write(tmp_path / "later.csv", path.read_text() + "99,x,oops,1\n")
    capsys.readouterr()
    assert main(["predict", str(model), str(bad), "--chunk-size", "5"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "expected a number, got 'oops'" in err


# --- 3. reading numeric columns into arrays ------------------------------------------------------
def test_numeric_reading_keeps_arrays_for_numbers_and_strings_for_text(tmp_path):
    # 'late' is numbers for the first 65,536-row chunk, then a word: it is read again as text
    n = 70_000
    lines = [f"{i},{i % 7}.5,{'ab'[i % 2]},{i if i < 69_000 else 'w'}" for i in range(n)]
    path = write(tmp_path / "big.csv", "n,x,t,late\n" + "\n".join(lines) + "\n")
    table = read_table(path, numeric=True, text=["n"])
    assert table.columns[0][:2] == ["0", "1"]  # named as text
    assert isinstance(table.columns[1], np.ndarray) and table.columns[1][:3].tolist() == [0.5, 1.5, 2.5]
    assert table.columns[2][:3] == ["a", "b", "a"]
    assert table.columns[3][0] == "0" and table.columns[3][-1] == "w" and len(table.columns[3]) == n
    assert table.lines[-1] == n + 1


def test_rows_with_the_wrong_number_of_fields_are_listed_together(tmp_path):
    path = write(tmp_path / "w.csv", "a,b,c\n1,2,3\n1,2\n4,5,6\n1,2,3,4\n7,8,9\n")
    with pytest.raises(CsvError) as info:
        read_table(path)
    assert str(info.value) == (f"{path}: 2 rows with the wrong number of fields: line 3, column 3: this row has"
                               " 2 fields, the header has 3 (no value for 'c'); line 5, column 4: this row has"
                               " 4 fields, the header has 3")
