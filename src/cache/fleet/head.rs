//! The response head as a fleet event's payload: status, entry kind and headers.

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use crate::cache::entry::EntryKind;
use crate::cache::flight::Head;

/// `status (u16) kind (u8) count (u16)`, then per header `name length (u16) name value
/// length (u32) value`, all big-endian.
pub(super) fn encode(head: &Head) -> Bytes {
    let mut b = BytesMut::with_capacity(64 + head.headers.len() * 48);
    b.put_u16(head.status.as_u16());
    b.put_u8(match head.kind {
        EntryKind::Json => 0,
        EntryKind::Sse => 1,
    });
    let n = head.headers.len().min(u16::MAX as usize);
    b.put_u16(n as u16);
    for (name, value) in head.headers.iter().take(n) {
        b.put_u16(name.as_str().len() as u16);
        b.put_slice(name.as_str().as_bytes());
        b.put_u32(value.len() as u32);
        b.put_slice(value.as_bytes());
    }
    b.freeze()
}

fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if b.len() < n {
        return None;
    }
    let (head, rest) = b.split_at(n);
    *b = rest;
    Some(head)
}

fn u16_of(b: &mut &[u8]) -> Option<u16> {
    take(b, 2).map(|s| u16::from_be_bytes([s[0], s[1]]))
}

/// The head in `data`, or `None` when it does not decode (written by something else).
pub(super) fn decode(data: &[u8]) -> Option<Head> {
    let mut b = data;
    let status = StatusCode::from_u16(u16_of(&mut b)?).ok()?;
    let kind = match take(&mut b, 1)?[0] {
        0 => EntryKind::Json,
        1 => EntryKind::Sse,
        _ => return None,
    };
    let n = u16_of(&mut b)?;
    let mut headers = HeaderMap::with_capacity(n as usize);
    for _ in 0..n {
        let len = u16_of(&mut b)? as usize;
        let name = HeaderName::from_bytes(take(&mut b, len)?).ok()?;
        let s = take(&mut b, 4)?;
        let len = u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize;
        let value = HeaderValue::from_bytes(take(&mut b, len)?).ok()?;
        headers.append(name, value);
    }
    b.is_empty().then_some(Head {
        status,
        headers,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_round_trip_and_junk_is_rejected() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("text/event-stream"),
        );
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        let head = Head {
            status: StatusCode::CREATED,
            headers,
            kind: EntryKind::Sse,
        };
        let enc = encode(&head);
        let back = decode(&enc).unwrap();
        assert_eq!(back.status, StatusCode::CREATED);
        assert_eq!(back.kind, EntryKind::Sse);
        assert_eq!(back.headers, head.headers);
        for cut in 0..enc.len() {
            assert!(decode(&enc[..cut]).is_none(), "{cut}");
        }
        let mut longer = enc.to_vec();
        longer.push(0);
        assert!(decode(&longer).is_none());
        assert!(decode(&[0, 99, 0, 0, 0]).is_none()); // status 99
    }
}
