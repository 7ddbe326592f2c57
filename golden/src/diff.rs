//! A line diff of one block's expected and actual output, for the failure message.

/// One line of a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Same(&'a str),
    /// Expected, not printed.
    Expected(&'a str),
    /// Printed, not expected.
    Actual(&'a str),
}

/// The shortest edit from `expected` to `actual` (a longest common subsequence; blocks are a
/// few dozen lines, so the quadratic table is small). Removals come before additions.
pub(crate) fn diff<'a>(expected: &'a [String], actual: &'a [String]) -> Vec<Line<'a>> {
    let (n, m) = (expected.len(), actual.len());
    // common[i][j]: the longest common subsequence of expected[i..] and actual[j..].
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if expected[i] == actual[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut lines = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            lines.push(Line::Same(&expected[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || common[i + 1][j] >= common[i][j + 1]) {
            lines.push(Line::Expected(&expected[i]));
            i += 1;
        } else {
            lines.push(Line::Actual(&actual[j]));
            j += 1;
        }
    }
    lines
}

/// The diff as text, one line each: `  ` same, `- ` expected only, `+ ` printed only.
pub(crate) fn show(lines: &[Line<'_>]) -> String {
    let mut text = String::new();
    for line in lines {
        let (mark, line) = match line {
            Line::Same(l) => ("  ", l),
            Line::Expected(l) => ("- ", l),
            Line::Actual(l) => ("+ ", l),
        };
        text.push_str(mark);
        text.push_str(line);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| l.to_string()).collect()
    }

    #[test]
    fn a_changed_line_is_a_removal_and_an_addition() {
        let expected = strings(&["a", "b", "c"]);
        let actual = strings(&["a", "B", "c", "d"]);
        assert_eq!(
            diff(&expected, &actual),
            [
                Line::Same("a"),
                Line::Expected("b"),
                Line::Actual("B"),
                Line::Same("c"),
                Line::Actual("d"),
            ]
        );
        assert_eq!(show(&diff(&expected, &actual)), "  a\n- b\n+ B\n  c\n+ d\n");
    }

    #[test]
    fn empty_sides() {
        let some = strings(&["x", "y"]);
        assert_eq!(diff(&some, &[]), [Line::Expected("x"), Line::Expected("y")]);
        assert_eq!(diff(&[], &some), [Line::Actual("x"), Line::Actual("y")]);
        assert_eq!(diff(&[], &[]), []);
        assert_eq!(diff(&some, &some), [Line::Same("x"), Line::Same("y")]);
    }
}
