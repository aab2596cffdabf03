"""chainrule.csvio: reading CSV files with located errors, and the encoding a model keeps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chainrule.csvio import CsvError, TablePreprocessor, TableReader, read_table, write_csv


def table_of(tmp_path, text, name="t.csv", **kw):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return read_table(path, **kw)


def test_quotes_bom_blank_lines_spaces_and_line_numbers(tmp_path):
    t = table_of(tmp_path, '\ufeff a , b ,c\n1,"x, y",3\n\n"4"," q\nr",6\n7,z,9\n')
    assert t.header == ["a", "b", "c"]
    assert t.columns == [["1", "4", "7"], ["x, y", "q\nr", "z"], ["3", "6", "9"]]
    assert t.lines.tolist() == [2, 5, 6]  # a quoted newline ends its row on the next line
    with pytest.raises(CsvError, match=r"t.csv, line 6, column 1 \('a'\): expected a number, got 'x'"):
        table_of(tmp_path, "a\n1\n2\n\n\nx\n").numbers(0)


def test_missing_values_in_numbers_are_errors(tmp_path):
    for cell in ("", "NA", "nan", "?"):
        t = table_of(tmp_path, f"a,b\n1,2\n{cell},3\n")
        with pytest.raises(CsvError, match=r"line 3, column 1 \('a'\): missing value"):
            t.numbers(0)
    with pytest.raises(CsvError, match="expected a finite number, got 'inf'"):
        table_of(tmp_path, "a\ninf\n").numbers(0)


def test_header_problems(tmp_path):
    with pytest.raises(CsvError, match=r"line 1, column 3: duplicate column name 'a' \(also column 1\)"):
        table_of(tmp_path, "a,b,a\n1,2,3\n")
    with pytest.raises(CsvError, match="line 1, column 2: the header gives this column no name"):
        table_of(tmp_path, "a,,c\n1,2,3\n")
    with pytest.raises(CsvError, match="line 1: the file is empty"):
        table_of(tmp_path, "\n\n")
    with pytest.raises(CsvError, match="no such file"):
        read_table(tmp_path / "absent.csv")
    with pytest.raises(CsvError, match="is not UTF-8"):
        (tmp_path / "latin.csv").write_bytes("a\n\xe9\n".encode("latin-1"))
        read_table(tmp_path / "latin.csv")


def test_semicolon_delimiter_and_chunks(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a;b\n" + "".join(f"{i};{i * 2}\n" for i in range(10)))
    with TableReader(path, delimiter=";") as reader:
        sizes = [chunk.n_rows for chunk in reader.chunks(4)]
    assert sizes == [4, 4, 2]
    assert read_table(path, delimiter=";").numbers(1).tolist() == [2.0 * i for i in range(10)]


def test_column_kinds_one_hot_and_unseen_categories(tmp_path):
    rows = "".join(f"{i},{['red', 'blue'][i % 2]},{i % 3},{'yes' if i % 2 else 'no'}\n" for i in range(30))
    t = table_of(tmp_path, "n,color,code,label\n" + rows)
    pre = TablePreprocessor("label", categorical=["code"]).fit(t)
    assert pre.features == [{"name": "n", "kind": "numeric"},
                            {"name": "color", "kind": "categorical", "categories": ["blue", "red"]},
                            {"name": "code", "kind": "categorical", "categories": ["0", "1", "2"]}]
    assert pre.input_names == ["n", "color=blue", "color=red", "code=0", "code=1", "code=2"]
    X, unseen = pre.transform(t)
    assert unseen == 0 and X[1].tolist() == [1, 1, 0, 0, 1, 0]
    assert pre.encode_target(t)[:3].tolist() == [0, 1, 0]
    new = table_of(tmp_path, "label,code,color,n,extra\nyes,7,green,5,x\n", name="new.csv")
    X, unseen = pre.transform(new)  # columns found by name; unseen categories are all zeros
    assert unseen == 2 and X.tolist() == [[5, 0, 0, 0, 0, 0]]
    again = TablePreprocessor.from_config(json.loads(json.dumps(pre.get_config())))
    assert again.features == pre.features and again.target_info == pre.target_info


def test_a_stray_word_in_a_numeric_column_is_reported_not_one_hot(tmp_path):
    rows = "".join(f"{i},{'ab'[i % 2]}\n" for i in range(10)) + "twelve,a\n"
    with pytest.raises(CsvError, match=r"line 12, column 1 \('x'\): expected a number, got 'twelve'"):
        TablePreprocessor("y").fit(table_of(tmp_path, "x,y\n" + rows))


def test_too_many_categories_suggests_ignore(tmp_path):
    rows = "".join(f"name{i},{i % 2}\n" for i in range(20))
    with pytest.raises(CsvError, match=r"column 1 \('who'\): text column with 20 distinct values.*--ignore who"):
        TablePreprocessor("y", max_categories=10).fit(table_of(tmp_path, "who,y\n" + rows))
    pre = TablePreprocessor("y", ignore=["who"]).fit(table_of(tmp_path, "who,x,y\n" + rows.replace(",", ",1,")))
    assert [f["name"] for f in pre.features] == ["x"]


def test_target_inference_and_canonical_labels(tmp_path):
    labels = ["1", "2.0", "1.0", "2", "3"] * 4
    t = table_of(tmp_path, "x,y\n" + "".join(f"{i},{v}\n" for i, v in enumerate(labels)))
    pre = TablePreprocessor("y").fit(t)
    assert pre.task == "classification" and pre.classes == ["1", "2", "3"]
    assert pre.encode_target(t)[:5].tolist() == [0, 1, 0, 1, 2]
    assert pre.decode(np.eye(3)) == ["1", "2", "3"]
    reg = TablePreprocessor("y").fit(table_of(tmp_path, "x,y\n" + "".join(f"{i},{i * 1.5}\n" for i in range(20))))
    assert reg.task == "regression"
    y = reg.encode_target(table_of(tmp_path, "x,y\n" + "".join(f"{i},{i * 1.5}\n" for i in range(20))))
    assert y.mean() == pytest.approx(0) and y.std() == pytest.approx(1)
    assert reg.decode(y[:, None]).tolist() == pytest.approx([i * 1.5 for i in range(20)])
    with pytest.raises(CsvError, match="one class only"):
        TablePreprocessor("y").fit(table_of(tmp_path, "x,y\n1,a\n2,a\n"))
    with pytest.raises(CsvError, match=r"line 3, column 2 \('y'\): missing target value"):
        TablePreprocessor("y").fit(table_of(tmp_path, "x,y\n1,a\n2,\n3,b\n"))


def test_write_csv_is_atomic(tmp_path):
    out = tmp_path / "out.csv"
    write_csv(out, ["a", "b"], [["1", "x,y"]])
    assert out.read_text() == 'a,b\n1,"x,y"\n'

    def rows():
        yield ["2", "z"]
        raise CsvError("in.csv", 9, 1, "broken")

    with pytest.raises(CsvError):
        write_csv(out, ["a", "b"], rows())
    assert out.read_text() == 'a,b\n1,"x,y"\n' and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
