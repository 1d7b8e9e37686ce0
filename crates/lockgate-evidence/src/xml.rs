//! A thin layer over quick-xml's streaming reader: element events with their
//! attributes decoded, text, and a nesting limit. quick-xml never expands external
//! entities or DTDs, so reports cannot make us read files or blow up in memory.

use crate::{Bounded, EvidenceError, MAX_REPORT_BYTES};
use quick_xml::events::{BytesStart, Event};
use std::collections::HashMap;
use std::io::BufRead;

/// Deepest element nesting accepted.
const MAX_DEPTH: usize = 256;

/// What the caller sees of an XML document.
pub enum XmlEvent {
    /// An opening (or empty) element: local name, attributes, and whether it is empty
    /// (`<x/>`, no matching end event follows).
    Start {
        name: String,
        attrs: HashMap<String, String>,
        empty: bool,
    },
    End {
        name: String,
    },
    Text(String),
    Eof,
}

pub struct XmlReader<R: BufRead> {
    reader: quick_xml::Reader<Bounded<R>>,
    buf: Vec<u8>,
    depth: usize,
    format: &'static str,
}

impl<R: BufRead> XmlReader<R> {
    pub fn new(reader: R, format: &'static str) -> XmlReader<R> {
        let mut reader = quick_xml::Reader::from_reader(Bounded::new(reader, MAX_REPORT_BYTES));
        reader.config_mut().trim_text(true);
        XmlReader {
            reader,
            buf: Vec::new(),
            depth: 0,
            format,
        }
    }

    fn err(&self, message: impl std::fmt::Display) -> EvidenceError {
        EvidenceError::malformed(
            self.format,
            format!("{message} (at byte {})", self.reader.buffer_position()),
        )
    }

    pub fn next(&mut self) -> Result<XmlEvent, EvidenceError> {
        loop {
            self.buf.clear();
            let event = self.reader.read_event_into(&mut self.buf).map_err(|e| {
                EvidenceError::malformed(self.format, format!("not well-formed XML: {e}"))
            })?;
            match event {
                Event::Start(e) => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(self.err(format!("elements nested deeper than {MAX_DEPTH}")));
                    }
                    let (name, attrs) = decode(&e, self.format)?;
                    return Ok(XmlEvent::Start {
                        name,
                        attrs,
                        empty: false,
                    });
                }
                Event::Empty(e) => {
                    let (name, attrs) = decode(&e, self.format)?;
                    return Ok(XmlEvent::Start {
                        name,
                        attrs,
                        empty: true,
                    });
                }
                Event::End(e) => {
                    self.depth = self.depth.saturating_sub(1);
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    return Ok(XmlEvent::End { name });
                }
                Event::Text(t) => {
                    let text = String::from_utf8_lossy(&t).into_owned();
                    if !text.is_empty() {
                        return Ok(XmlEvent::Text(text));
                    }
                }
                Event::GeneralRef(r) => {
                    // `&amp;` and friends arrive on their own between text events.
                    let name = String::from_utf8_lossy(&r).into_owned();
                    let text = match name.as_str() {
                        "amp" => "&".to_string(),
                        "lt" => "<".to_string(),
                        "gt" => ">".to_string(),
                        "quot" => "\"".to_string(),
                        "apos" => "'".to_string(),
                        n => n
                            .strip_prefix("#x")
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
                            .and_then(char::from_u32)
                            .map(String::from)
                            .unwrap_or_default(),
                    };
                    if !text.is_empty() {
                        return Ok(XmlEvent::Text(text));
                    }
                }
                Event::CData(t) => {
                    return Ok(XmlEvent::Text(String::from_utf8_lossy(&t).into_owned()));
                }
                Event::Eof => return Ok(XmlEvent::Eof),
                // Declarations, comments, processing instructions, DOCTYPE, entity
                // references: nothing a report's facts depend on.
                _ => {}
            }
        }
    }
}

fn decode(
    e: &BytesStart<'_>,
    format: &'static str,
) -> Result<(String, HashMap<String, String>), EvidenceError> {
    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
    let mut attrs = HashMap::new();
    for a in e.attributes() {
        let a = a.map_err(|err| EvidenceError::malformed(format, format!("<{name}>: {err}")))?;
        let key = String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|err| EvidenceError::malformed(format, format!("<{name} {key}>: {err}")))?
            .into_owned();
        attrs.insert(key, value);
    }
    Ok((name, attrs))
}
