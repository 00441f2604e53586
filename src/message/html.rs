//! HTML rendered as plain text for a terminal: block elements (`<p>`, `<h1>`..`<h6>`, `<div>`,
//! `<tr>`, `<blockquote>`, ...) end lines, paragraphs and headings are set apart by a blank line,
//! list items become `- ` (or `1. ` in an ordered list) items, quoted blocks get `> `, and `<pre>`
//! keeps its line breaks. Everything else in the markup is dropped: this is for reading an
//! HTML-only message, not for rendering a page.
//!
//! `mail-parser`'s own `html_to_text` joins headings, divisions and list items into one line; a
//! full HTML engine would be a heavy dependency for this one job. Entities are decoded with
//! `mail-parser`'s table (all of HTML5's named entities).

use mail_parser::decoders::html::add_html_token;

/// Elements whose content is never shown.
const HIDDEN: [&str; 6] = ["head", "title", "style", "script", "template", "svg"];

/// Hidden elements whose content is raw text up to the closing tag (no tags inside).
const RAW_TEXT: [&str; 3] = ["title", "style", "script"];

/// Elements set apart from what surrounds them by a blank line.
const PARAGRAPHS: [&str; 13] = [
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "dl", "hr", "figure", "address",
];

/// Elements that start and end a line.
const LINES: [&str; 25] = [
    "div",
    "tr",
    "li",
    "dt",
    "dd",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "center",
    "caption",
    "figcaption",
    "form",
    "fieldset",
    "legend",
    "details",
    "summary",
    "option",
    "body",
    "html",
    "thead",
    "tbody",
];

/// Renders `html` as plain text: LF line ends, no leading or trailing blank lines, no trailing
/// spaces, at most one blank line in a row except where `<br>`s ask for more.
pub fn to_text(html: &str) -> String {
    let mut r = Renderer::default();
    let bytes = html.as_bytes();
    let mut pos = 0;
    while pos < bytes.len() {
        match bytes[pos] {
            b'<' => pos = r.markup(html, pos),
            b'&' => pos = r.entity(html, pos),
            _ => {
                // Up to the next markup or entity; `<` and `&` are ASCII, so this is a char boundary.
                let end =
                    memchr::memchr2(b'<', b'&', &bytes[pos..]).map_or(bytes.len(), |n| pos + n);
                r.text(&html[pos..end]);
                pos = end;
            }
        }
    }
    r.finish()
}

/// One open list: `None` for `<ul>`, the last number given for `<ol>`.
type List = Option<u32>;

#[derive(Default)]
struct Renderer {
    out: String,
    /// Newlines wanted before the next text: 1 ends the line, 2 leaves a blank line.
    breaks: usize,
    /// Whitespace was seen since the last text.
    space: bool,
    /// What to write at the start of the next text line (a list item's marker).
    marker: Option<String>,
    hidden: usize,
    pre: usize,
    quotes: usize,
    lists: Vec<List>,
}

impl Renderer {
    /// Handles the `<` at `pos`; returns where to go on.
    fn markup(&mut self, html: &str, pos: usize) -> usize {
        let rest = &html[pos..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            return comment.find("-->").map_or(html.len(), |n| pos + 4 + n + 3);
        }
        let bytes = rest.as_bytes();
        let closing = bytes.get(1) == Some(&b'/');
        let name_start = if closing { 2 } else { 1 };
        match bytes.get(name_start) {
            Some(c) if c.is_ascii_alphabetic() => {}
            // `<!DOCTYPE ...>`, `<?xml ...?>`: skipped.
            Some(b'!' | b'?') if !closing => {
                return rest.find('>').map_or(html.len(), |n| pos + n + 1);
            }
            // A `<` that starts no tag is text ("a < b").
            _ => {
                self.text("<");
                return pos + 1;
            }
        }
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .count();
        let name = rest[name_start..name_start + name_len].to_ascii_lowercase();
        let end = pos + tag_end(&bytes[name_start + name_len..]) + name_start + name_len;
        if closing {
            self.close(&name);
            return end;
        }
        self.open(&name);
        if RAW_TEXT.contains(&name.as_str()) {
            // Skip to the closing tag: a script's `a<b` is not markup.
            let close = format!("</{name}");
            let tail = &html.as_bytes()[end..];
            let found = tail
                .windows(close.len())
                .position(|w| w.eq_ignore_ascii_case(close.as_bytes()));
            return match found {
                Some(n) => end + n,
                None => html.len(),
            };
        }
        end
    }

    fn open(&mut self, name: &str) {
        if HIDDEN.contains(&name) {
            self.hidden += 1;
            return;
        }
        match name {
            "br" => self.newline(),
            "td" | "th" => self.space = true,
            "ul" | "ol" => {
                self.block(if self.lists.is_empty() { 2 } else { 1 });
                self.lists.push(if name == "ol" { Some(0) } else { None });
            }
            "li" => {
                self.block(1);
                let depth = self.lists.len().max(1);
                let label = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{n}. ")
                    }
                    _ => "- ".to_owned(),
                };
                self.marker = Some(format!("{}{label}", "  ".repeat(depth - 1)));
            }
            "blockquote" => {
                self.block(2);
                self.quotes += 1;
            }
            "pre" => {
                self.block(2);
                self.pre += 1;
            }
            _ => self.block_for(name),
        }
    }

    fn close(&mut self, name: &str) {
        if HIDDEN.contains(&name) {
            // `<body>` without `</head>` also ends the head, see `open`; never underflow.
            self.hidden = self.hidden.saturating_sub(1);
            return;
        }
        match name {
            "ul" | "ol" => {
                self.lists.pop();
                self.block(if self.lists.is_empty() { 2 } else { 1 });
            }
            "blockquote" => {
                self.quotes = self.quotes.saturating_sub(1);
                self.block(2);
            }
            "pre" => {
                self.pre = self.pre.saturating_sub(1);
                self.block(2);
            }
            "td" | "th" => self.space = true,
            "li" => {
                // An empty item leaves no marker behind for the next text.
                self.marker = None;
                self.block(1);
            }
            _ => self.block_for(name),
        }
    }

    /// The break a paragraph or line element asks for, if it is one.
    fn block_for(&mut self, name: &str) {
        if name == "body" {
            // Some messages never close their `<head>`.
            self.hidden = 0;
        }
        if PARAGRAPHS.contains(&name) {
            self.block(2);
        } else if LINES.contains(&name) {
            self.block(1);
        }
    }

    /// Asks for `n` newlines before the next text (not at the very start).
    fn block(&mut self, n: usize) {
        self.breaks = self.breaks.max(n);
        self.space = false;
    }

    /// `<br>`: a line break now, so that several of them make blank lines.
    fn newline(&mut self) {
        if self.hidden > 0 {
            return;
        }
        self.flush_breaks();
        self.out.push('\n');
        self.space = false;
    }

    /// Decodes the entity at `pos` (`&amp;`, `&#233;`, `&#x2014;`); a `&` that starts none is
    /// text. Returns where to go on.
    fn entity(&mut self, html: &str, pos: usize) -> usize {
        let rest = &html.as_bytes()[pos + 1..];
        let len = rest
            .iter()
            .take(32)
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'#')
            .count();
        if len == 0 || rest.get(len) != Some(&b';') {
            self.text("&");
            return pos + 1;
        }
        let mut decoded = String::new();
        add_html_token(&mut decoded, &html.as_bytes()[pos..pos + len + 2], false);
        // A non-breaking space is still a space, but one that does not collapse.
        let decoded = decoded.replace('\u{a0}', " ");
        self.literal(&decoded);
        pos + len + 2
    }

    /// Text between markup: whitespace collapses to one space, except in `<pre>`.
    fn text(&mut self, text: &str) {
        if self.hidden > 0 {
            return;
        }
        if self.pre > 0 {
            let mut lines = text.split('\n');
            if let Some(first) = lines.next() {
                self.literal(first.trim_end_matches('\r'));
            }
            for line in lines {
                self.newline();
                self.literal(line.trim_end_matches('\r'));
            }
            return;
        }
        for (i, word) in text.split(is_html_space).enumerate() {
            if i > 0 {
                self.space = true;
            }
            if !word.is_empty() {
                self.literal(word);
            }
        }
    }

    /// Text written as it is, after any pending line breaks or space.
    fn literal(&mut self, text: &str) {
        if self.hidden > 0 || text.is_empty() {
            return;
        }
        self.flush_breaks();
        if self.at_line_start() {
            self.out.push_str(&"> ".repeat(self.quotes));
            if let Some(marker) = self.marker.take() {
                self.out.push_str(&marker);
            }
        } else if self.space && !self.out.ends_with(' ') {
            self.out.push(' ');
        }
        self.space = false;
        self.out.push_str(text);
    }

    fn flush_breaks(&mut self) {
        if self.breaks == 0 {
            return;
        }
        if !self.out.is_empty() {
            let have = self.out.len() - self.out.trim_end_matches('\n').len();
            for _ in have..self.breaks {
                self.out.push('\n');
            }
        }
        self.breaks = 0;
    }

    fn at_line_start(&self) -> bool {
        self.out.is_empty() || self.out.ends_with('\n')
    }

    fn finish(self) -> String {
        let lines: Vec<&str> = self.out.lines().map(str::trim_end).collect();
        lines.join("\n").trim_matches('\n').to_owned()
    }
}

/// HTML's whitespace (a non-breaking space is not).
fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0c}')
}

/// The length up to and including the `>` that ends a tag whose attributes start `attributes`,
/// skipping `>` inside quoted attribute values; the whole length when it never ends.
fn tag_end(attributes: &[u8]) -> usize {
    let mut quote = None;
    let mut previous = b' ';
    for (i, &c) in attributes.iter().enumerate() {
        let starts_value = previous == b'=' || previous.is_ascii_whitespace();
        previous = c;
        match (quote, c) {
            // A quote opens a value only where one starts (`title=don't` is unquoted).
            (None, b'"' | b'\'') if starts_value => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => return i + 1,
            _ => {}
        }
    }
    attributes.len()
}

#[cfg(test)]
mod tests {
    use super::to_text;

    #[test]
    fn paragraphs_and_headings_are_set_apart() {
        assert_eq!(
            to_text("<h1>Title</h1><p>One\n  two.</p><p>Three</p>"),
            "Title\n\nOne two.\n\nThree"
        );
        assert_eq!(to_text("<H2 class=x>Upper</H2>case"), "Upper\n\ncase");
    }

    #[test]
    fn line_breaks_and_divisions() {
        assert_eq!(to_text("a<br>b<br/>c<br />d"), "a\nb\nc\nd");
        assert_eq!(to_text("a<br><br>b"), "a\n\nb");
        assert_eq!(
            to_text("<div>one</div><div>two</div>three"),
            "one\ntwo\nthree"
        );
        assert_eq!(to_text("<div><div><p>deep</p></div></div>x"), "deep\n\nx");
    }

    #[test]
    fn lists_become_items() {
        assert_eq!(
            to_text("Intro<ul><li>apples</li><li>pears</li></ul>End"),
            "Intro\n\n- apples\n- pears\n\nEnd"
        );
        assert_eq!(
            to_text("<ol><li>first<li>second</ol>"),
            "1. first\n2. second"
        );
        assert_eq!(
            to_text("<ul><li>a<ul><li>b</li></ul></li><li>c</li></ul>"),
            "- a\n  - b\n- c"
        );
    }

    #[test]
    fn table_rows_are_lines_and_cells_are_words() {
        assert_eq!(
            to_text(
                "<table><tr><td>Name</td><td>Qty</td></tr><tr><th>Pear</th><th>3</th></tr></table>"
            ),
            "Name Qty\nPear 3"
        );
    }

    #[test]
    fn blockquote_is_quoted() {
        assert_eq!(
            to_text("She wrote:<blockquote><p>Hi</p><p>there</p></blockquote>Yes."),
            "She wrote:\n\n> Hi\n\n> there\n\nYes."
        );
    }

    #[test]
    fn pre_keeps_its_lines() {
        assert_eq!(
            to_text("<p>Code:</p><pre>fn main() {\n    x &lt; 1\n}</pre>after"),
            "Code:\n\nfn main() {\n    x < 1\n}\n\nafter"
        );
    }

    #[test]
    fn head_style_script_and_comments_are_hidden() {
        assert_eq!(
            to_text(
                "<html><head><title>T</title><style>p{color:red}</style></head>\
                 <body><!-- <p>hidden</p> --><script>if (a<b) x='</p>';</script>shown</body></html>"
            ),
            "shown"
        );
        // A head that is never closed ends at <body>.
        assert_eq!(to_text("<head><meta charset=utf-8><body>text"), "text");
        assert_eq!(to_text("<!DOCTYPE html><p>x</p>"), "x");
    }

    #[test]
    fn entities_are_decoded() {
        assert_eq!(
            to_text("Caf&eacute; &amp; tea &mdash; 5&nbsp;&#8364; &#x2013; AT&T, a&b; 1 < 2"),
            "Caf\u{e9} & tea \u{2014} 5 \u{20ac} \u{2013} AT&T, a&b; 1 < 2"
        );
    }

    #[test]
    fn attributes_with_a_closing_bracket() {
        assert_eq!(
            to_text("<a href=\"x>y\" title='>'>link</a> text"),
            "link text"
        );
        assert_eq!(to_text("<a title=don't>x</a> y"), "x y");
    }

    #[test]
    fn inline_elements_do_not_break_lines() {
        assert_eq!(
            to_text("<p>a <b>bold</b>, <i>it</i><span>alic</span></p>"),
            "a bold, italic"
        );
    }

    #[test]
    fn truncated_markup_does_not_panic() {
        let html = "<p>caf\u{e9} <a href=\"x\">&eacute;<!-- <ul><li>x</ul><pre>a\nb</pre>";
        for end in 0..=html.len() {
            if html.is_char_boundary(end) {
                let _ = to_text(&html[..end]);
            }
        }
        assert_eq!(to_text("<p>unclosed <a href=\"x"), "unclosed");
        assert_eq!(to_text("text <!-- never closed"), "text");
        assert_eq!(to_text("&"), "&");
        assert_eq!(to_text("</>"), "</>");
    }
}
