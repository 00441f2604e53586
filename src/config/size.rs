//! Sizes in octets as the config file writes them: a number, or `"50M"`, `"200K"`, `"1G"`.

use serde::Deserialize;

/// A size in octets, written as a number or as a string with a K, M or G suffix (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `"50M"`, `"200K"`, `"1G"` or `"123"`.
    pub fn parse(text: &str) -> Option<ByteSize> {
        let text = text.trim();
        let (digits, factor) = match text.char_indices().last()? {
            (i, 'k' | 'K') => (&text[..i], 1u64 << 10),
            (i, 'm' | 'M') => (&text[..i], 1 << 20),
            (i, 'g' | 'G') => (&text[..i], 1 << 30),
            _ => (text, 1),
        };
        digits
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .map(ByteSize)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(text) => ByteSize::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {text:?}: write it like \"50M\", \"200K\" or a number of octets"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_k_m_and_g_suffixes() {
        assert_eq!(ByteSize::parse("200K"), Some(ByteSize(200 << 10)));
        assert_eq!(ByteSize::parse("10m"), Some(ByteSize(10 << 20)));
        assert_eq!(ByteSize::parse(" 1G "), Some(ByteSize(1 << 30)));
        assert_eq!(ByteSize::parse("12"), Some(ByteSize(12)));
        assert_eq!(ByteSize::parse("lots"), None);
        assert_eq!(ByteSize::parse("99999999999999G"), None, "overflow");
    }
}
