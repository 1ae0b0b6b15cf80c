//! The wire form of cached values in Redis: a format-version byte, a flags byte, then
//! msgpack (rmp-serde), LZ4-compressed when large.

use std::borrow::Cow;

use serde::{Serialize, de::DeserializeOwned};

/// Bumped when the encoding changes; values of another version read as misses.
const FORMAT_VERSION: u8 = 1;
const FLAG_PLAIN: u8 = 0;
const FLAG_LZ4: u8 = 1;
/// Values at least this large are compressed: below it LZ4 saves little and costs a copy.
pub const COMPRESS_THRESHOLD: usize = 4 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("cannot encode the value: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("cannot decode the value: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("unknown cache format (version {version}, flags {flags})")]
    Format { version: u8, flags: u8 },
    #[error("the value is truncated or corrupt")]
    Corrupt,
    #[error("the value holds {size} bytes, over the {limit}-byte cap")]
    TooLarge { size: usize, limit: usize },
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let packed = rmp_serde::to_vec_named(value)?;
    let (flags, body) = if packed.len() >= COMPRESS_THRESHOLD {
        (FLAG_LZ4, lz4_flex::compress_prepend_size(&packed))
    } else {
        (FLAG_PLAIN, packed)
    };
    let mut bytes = Vec::with_capacity(body.len() + 2);
    bytes.push(FORMAT_VERSION);
    bytes.push(flags);
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// The value's msgpack size before compression, counted without building it: what an L1
/// entry weighs (close to what the value holds in memory; the compressed wire size would
/// undercount large values several times).
pub fn packed_size<T: Serialize>(value: &T) -> Result<usize, CodecError> {
    let mut counter = crate::counting::ByteCounter::default();
    value.serialize(&mut rmp_serde::Serializer::new(&mut counter).with_struct_map())?;
    Ok(counter.0)
}

/// The msgpack size inside an encoded value (its uncompressed size when compressed).
pub fn packed_len(bytes: &[u8]) -> usize {
    match bytes {
        [FORMAT_VERSION, FLAG_LZ4, size @ ..] if size.len() >= 4 => {
            u32::from_le_bytes(size[..4].try_into().expect("four bytes")) as usize
        }
        _ => bytes.len().saturating_sub(2),
    }
}

/// Decodes a value whose msgpack is at most `max_packed_bytes` (see [`unpack`]).
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max_packed_bytes: usize) -> Result<T, CodecError> {
    Ok(rmp_serde::from_slice(&unpack(bytes, max_packed_bytes)?)?)
}

/// The msgpack inside an encoded value, inflated when compressed, if it is at most
/// `max_packed_bytes`. The size an LZ4 value declares is checked before anything is
/// inflated, so a small value that claims (or would inflate to) a huge one costs nothing.
pub fn unpack(bytes: &[u8], max_packed_bytes: usize) -> Result<Cow<'_, [u8]>, CodecError> {
    let [version, flags, body @ ..] = bytes else {
        return Err(CodecError::Corrupt);
    };
    let size = packed_len(bytes);
    if size > max_packed_bytes {
        return Err(CodecError::TooLarge {
            size,
            limit: max_packed_bytes,
        });
    }
    match (*version, *flags) {
        (FORMAT_VERSION, FLAG_PLAIN) => Ok(Cow::Borrowed(body)),
        (FORMAT_VERSION, FLAG_LZ4) => lz4_flex::decompress_size_prepended(body)
            .map(Cow::Owned)
            .map_err(|_| CodecError::Corrupt),
        (version, flags) => Err(CodecError::Format { version, flags }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const LIMIT: usize = 1024 * 1024;

    #[test]
    fn a_value_over_the_cap_is_refused_before_it_is_inflated() {
        // 60 MiB of one byte compresses to about 240 KiB; the declared size alone refuses it.
        let packed = rmp_serde::to_vec_named(&json!({"text": "x".repeat(60 << 20)})).unwrap();
        let mut bomb = vec![FORMAT_VERSION, FLAG_LZ4];
        bomb.extend_from_slice(&lz4_flex::compress_prepend_size(&packed));
        drop(packed);
        assert!(bomb.len() < 300 * 1024);
        assert!(matches!(
            decode::<Value>(&bomb, LIMIT),
            Err(CodecError::TooLarge { limit: LIMIT, .. })
        ));
        let plain = encode(&json!({"text": "y".repeat(LIMIT)})).unwrap();
        let mut uncompressed = vec![FORMAT_VERSION, FLAG_PLAIN];
        uncompressed.extend_from_slice(&rmp_serde::to_vec_named(&"y".repeat(LIMIT)).unwrap());
        assert!(decode::<Value>(&plain, LIMIT).is_err());
        assert!(decode::<Value>(&uncompressed, LIMIT).is_err());
    }

    /// A value whose header lies: it declares a small size but inflates to more.
    #[test]
    fn a_value_inflating_past_its_declared_size_is_corrupt() {
        let packed = rmp_serde::to_vec_named(&"z".repeat(100_000)).unwrap();
        let mut lying = vec![FORMAT_VERSION, FLAG_LZ4];
        lying.extend_from_slice(&(1000u32).to_le_bytes());
        lying.extend_from_slice(&lz4_flex::compress(&packed));
        assert!(matches!(
            decode::<Value>(&lying, LIMIT),
            Err(CodecError::Corrupt)
        ));
    }

    #[test]
    fn small_values_round_trip_uncompressed() {
        let value = json!({"user_id": "ann", "n": 3, "tags": ["a", "b"]});
        let bytes = encode(&value).unwrap();
        assert_eq!(bytes[..2], [FORMAT_VERSION, FLAG_PLAIN]);
        assert_eq!(decode::<Value>(&bytes, LIMIT).unwrap(), value);
    }

    #[test]
    fn large_values_are_compressed_and_round_trip() {
        let value = json!({"text": "context ".repeat(2000)});
        let bytes = encode(&value).unwrap();
        assert_eq!(bytes[1], FLAG_LZ4);
        assert!(bytes.len() < 2000);
        assert_eq!(decode::<Value>(&bytes, LIMIT).unwrap(), value);
    }

    #[test]
    fn foreign_or_broken_bytes_are_errors_not_panics() {
        assert!(decode::<Value>(&[], LIMIT).is_err());
        assert!(matches!(
            decode::<Value>(&[9, 0, 1], LIMIT),
            Err(CodecError::Format { .. })
        ));
        assert!(decode::<Value>(&[FORMAT_VERSION, FLAG_LZ4, 255, 255, 255, 127], LIMIT).is_err());
        assert!(decode::<Value>(&[FORMAT_VERSION, FLAG_LZ4, 10, 0, 0, 0, 1, 2], LIMIT).is_err());
    }

    #[test]
    fn sizes_are_the_uncompressed_msgpack_length() {
        for value in [
            serde_json::json!({"small": 1}),
            serde_json::json!({"large": "x".repeat(20_000)}),
        ] {
            let packed = rmp_serde::to_vec_named(&value).unwrap().len();
            assert_eq!(packed_size(&value).unwrap(), packed);
            assert_eq!(packed_len(&encode(&value).unwrap()), packed);
        }
    }
}
