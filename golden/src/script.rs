//! Reading a script into comments and blocks, and writing it back with new output.

use crate::Command;

/// A script as read: what is outside the blocks is kept verbatim.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Item {
    /// A comment or a blank line between blocks.
    Text(String),
    Block(Block),
}

/// Commands (with comments among them), `---`, and the output they printed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Block {
    /// The command and comment lines as written.
    pub input: Vec<String>,
    pub commands: Vec<Command>,
    /// The output lines after `---`; `None` when the block has no `---` yet (a new block,
    /// written to be filled in by `UPDATE_GOLDEN=1`).
    pub expected: Option<Vec<String>>,
    /// The line of `---`, or where it would go.
    pub separator_line: usize,
}

pub(crate) fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Reads a script. Every text is a script: a block's commands end at `---`, or at a blank line
/// or the end of the file (then the block has no expected output); its output ends at a blank
/// line, which belongs to the block, or at the end of the file.
pub(crate) fn parse(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l)).peekable();
    while let Some((number, line)) = lines.next() {
        if is_blank(line) || is_comment(line) {
            items.push(Item::Text(line.to_owned()));
            continue;
        }
        let mut block = Block {
            input: vec![line.to_owned()],
            commands: vec![Command::parse(line, number)],
            expected: None,
            separator_line: number + 1,
        };
        for (number, line) in lines.by_ref() {
            block.separator_line = number;
            if line == "---" {
                block.expected = Some(Vec::new());
                break;
            }
            if is_blank(line) {
                break;
            }
            block.input.push(line.to_owned());
            if !is_comment(line) {
                block.commands.push(Command::parse(line, number));
            }
            block.separator_line = number + 1;
        }
        if let Some(expected) = &mut block.expected {
            for (_, line) in lines.by_ref() {
                if is_blank(line) {
                    break;
                }
                expected.push(line.to_owned());
            }
        }
        items.push(Item::Block(block));
    }
    items
}

/// Writes a script back with `outputs[i]` as the output of the i-th block: comments and blank
/// lines as they were, every block ended by a blank line unless it is the last thing in the
/// file.
pub(crate) fn render(items: &[Item], outputs: &[Vec<String>]) -> String {
    let mut text = String::new();
    let mut outputs = outputs.iter();
    for (i, item) in items.iter().enumerate() {
        match item {
            Item::Text(line) => {
                text.push_str(line);
                text.push('\n');
            }
            Item::Block(block) => {
                for line in &block.input {
                    text.push_str(line);
                    text.push('\n');
                }
                text.push_str("---\n");
                for line in outputs.next().expect("an output per block") {
                    text.push_str(line);
                    text.push('\n');
                }
                if i + 1 < items.len() {
                    text.push('\n');
                }
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(items: &[Item]) -> Vec<&Block> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Block(b) => Some(b),
                Item::Text(_) => None,
            })
            .collect()
    }

    const SCRIPT: &str = "\
# A comment, then a blank line.

append values=a
# a comment among the commands
read offset=0
---
ok base_offset=0
  indented output, # not a comment

# Two blank lines between blocks.

tick 5
---

info
---
x
";

    #[test]
    fn blocks_comments_and_output() {
        let items = parse(SCRIPT);
        let b = blocks(&items);
        assert_eq!(b.len(), 3);
        assert_eq!(
            b[0].input,
            [
                "append values=a",
                "# a comment among the commands",
                "read offset=0"
            ]
        );
        let names: Vec<_> = b[0].commands.iter().map(|c| (&*c.name, c.line)).collect();
        assert_eq!(names, [("append", 3), ("read", 5)]);
        assert_eq!(b[0].separator_line, 6);
        assert_eq!(
            b[0].expected.as_deref(),
            Some(
                &[
                    "ok base_offset=0".into(),
                    "  indented output, # not a comment".into()
                ][..]
            )
        );
        assert_eq!(b[1].expected.as_deref(), Some(&[][..]), "an empty output");
        assert_eq!(b[2].commands[0].line, 15);
        assert!(matches!(&items[0], Item::Text(t) if t == "# A comment, then a blank line."));
    }

    #[test]
    fn rendering_the_expected_output_gives_the_script_back() {
        let items = parse(SCRIPT);
        let outputs: Vec<Vec<String>> = blocks(&items)
            .iter()
            .map(|b| b.expected.clone().unwrap())
            .collect();
        assert_eq!(render(&items, &outputs), SCRIPT);
    }

    #[test]
    fn a_block_without_separator_gets_one() {
        let items = parse("tick 5\ninfo\n\nread\n");
        let b = blocks(&items);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].expected, None);
        assert_eq!(b[0].separator_line, 3);
        assert_eq!(b[1].separator_line, 5);
        let outputs = vec![vec!["now=5".to_owned()], vec!["r".to_owned()]];
        assert_eq!(
            render(&items, &outputs),
            "tick 5\ninfo\n---\nnow=5\n\nread\n---\nr\n"
        );
    }
}
