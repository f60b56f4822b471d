//! The generator of the differential tests of one-pass readers against the
//! general decoder (`stream_ack_diff.rs`, `groups_pass_diff.rs`): seeded
//! choices, `calm` making odd ones rarer, whitespace, and byte-level
//! mutations of a generated text.
#![allow(dead_code)]

use crate::rng::Rng;

pub struct Gen {
    pub r: Rng,
    /// Odd choices eight times rarer, so that many texts are valid.
    pub calm: bool,
}

impl Gen {
    pub fn below(&mut self, n: usize) -> usize {
        self.r.below(n as u64) as usize
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    /// True once in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(if self.calm { n * 8 } else { n }) == 0
    }
    /// An object of up to `most - 1` entries `key: value` with whitespace
    /// around them (none once in 6), or once in 30 one of `odd` instead.
    pub fn object_of(
        &mut self,
        odd: &[&str],
        most: usize,
        key: fn(&mut Gen) -> String,
        value: fn(&mut Gen) -> String,
    ) -> String {
        if self.one_in(30) {
            return self.pick(odd).into();
        }
        let n = if self.one_in(6) { 0 } else { self.below(most) };
        let entries: Vec<String> = (0..n)
            .map(|_| {
                format!("{}{}{}:{}{}", self.ws(), key(self), self.ws(), self.ws(), value(self))
            })
            .collect();
        format!("{{{}}}", entries.join(","))
    }
    pub fn ws(&mut self) -> &'static str {
        if self.one_in(8) {
            self.pick(&[" ", "\n", " \t ", "\r\n"])
        } else {
            ""
        }
    }
}

/// One to three edits at char boundaries: delete, insert, duplicate, truncate.
pub fn mutate(g: &mut Gen, text: &str) -> String {
    let mut cs: Vec<char> = text.chars().collect();
    for _ in 0..1 + g.below(3) {
        if cs.is_empty() {
            break;
        }
        let i = g.below(cs.len());
        match g.below(5) {
            0 => {
                let end = (i + 1 + g.below(4)).min(cs.len());
                cs.drain(i..end);
            }
            1 => {
                let alphabet: Vec<char> = "{}[]\",:0123456789.-eE\\u nul tr".chars().collect();
                cs.insert(i, alphabet[g.below(alphabet.len())]);
            }
            2 => {
                let end = (i + 1 + g.below(30)).min(cs.len());
                let dup: Vec<char> = cs[i..end].to_vec();
                let at = g.below(cs.len());
                cs.splice(at..at, dup);
            }
            3 => cs.truncate(i),
            _ => {
                if cs[i].is_ascii_digit() {
                    cs[i] = char::from(b'0' + g.below(10) as u8);
                } else {
                    cs.insert(i, ' ');
                }
            }
        }
    }
    cs.into_iter().collect()
}
