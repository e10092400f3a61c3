//! Signed fleet events, for layers that sign their entries
//! ([`CacheLayer::sign_entries`](crate::cache::CacheLayer::sign_entries)): whoever can
//! write the shared store could otherwise feed followers a head and frames of their
//! choosing, the same way they could forge an entry.
//!
//! A signing leader publishes every event as a [`FleetEvent::Data`] whose payload is
//! `tag (1 byte: h, d, e or f) payload HMAC-SHA256`, the HMAC (under the current entry
//! secret) covering a domain string, the cache key, the lease's fence and token, the
//! event's sequence number, the tag and the payload. A signing follower opens each
//! event with the sequence number it expects and accepts it only if one of its
//! accepted secrets made the HMAC: an event forged, modified, moved to another key,
//! flight or position, or an end appended to a cut log, is refused. Engines see opaque
//! data events and need nothing new. Deleting events from the store can only make
//! followers wait and then fail, as a dead leader does. The head also signs the time it
//! was published: a follower refuses a head older than [`MAX_FLIGHT_AGE`] (or from
//! further in the future than that), so a whole earlier flight written back into the
//! store (its lock and its log) cannot be replayed for long after it ran.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::cache::config::Clock;
use crate::cache::engine::{FleetEvent, FleetLease};
use crate::cache::sign::{EntrySecrets, SignatureError};

/// How old a signed head may be when a follower reads it: longer than any flight
/// (streams included) lasts, short next to an entry's life.
pub(super) const MAX_FLIGHT_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Separates these tags from every other use of the entry secrets.
const DOMAIN: &[u8] = b"mistral-tower/fleet-event/v1";
/// Bytes of an HMAC-SHA256 tag.
const MAC_LEN: usize = 32;

/// Signs and opens the events of one flight (a key and a lease).
#[derive(Clone)]
pub(super) struct Seal {
    secrets: Arc<EntrySecrets>,
    key: Arc<str>,
    lease: FleetLease,
    clock: Arc<dyn Clock>,
}

impl Seal {
    pub(super) fn new(
        secrets: Arc<EntrySecrets>,
        key: Arc<str>,
        lease: FleetLease,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Seal {
            secrets,
            key,
            lease,
            clock,
        }
    }

    fn parts<'a>(
        &'a self,
        seq: &'a [u8; 8],
        fence: &'a [u8; 8],
        tag: &'a [u8],
        payload: &'a [u8],
    ) -> [&'a [u8]; 7] {
        [
            DOMAIN,
            self.key.as_bytes(),
            fence,
            self.lease.token.as_bytes(),
            seq,
            tag,
            payload,
        ]
    }

    /// `event`, number `seq` of the flight, as the signed data event to publish.
    pub(super) fn seal(&self, seq: u64, event: &FleetEvent) -> FleetEvent {
        let (tag, mut payload) = event.to_parts();
        if let FleetEvent::Head(head) = event {
            // The head carries the time it was published, signed with it.
            let mut b = BytesMut::with_capacity(8 + head.len());
            b.put_u64(self.clock.now_ms());
            b.put_slice(head);
            payload = b.freeze();
        }
        let (seq, fence) = (seq.to_be_bytes(), self.lease.fence.to_be_bytes());
        let mac = self
            .secrets
            .tag_parts(&self.parts(&seq, &fence, tag.as_bytes(), &payload));
        let mut b = BytesMut::with_capacity(tag.len() + payload.len() + MAC_LEN);
        b.put_slice(tag.as_bytes());
        b.put_slice(&payload);
        b.put_slice(&mac);
        FleetEvent::Data(b.freeze())
    }

    /// The event [`seal`](Self::seal) made of number `seq`, or why it is refused.
    pub(super) fn open(&self, seq: u64, event: FleetEvent) -> Result<FleetEvent, SignatureError> {
        let FleetEvent::Data(sealed) = event else {
            return Err(SignatureError::Unsigned);
        };
        if sealed.len() < 1 + MAC_LEN {
            return Err(SignatureError::Unsigned);
        }
        let mac_at = sealed.len() - MAC_LEN;
        let tag = &sealed[..1];
        let payload: Bytes = sealed.slice(1..mac_at);
        let (seq_b, fence) = (seq.to_be_bytes(), self.lease.fence.to_be_bytes());
        let parts = self.parts(&seq_b, &fence, tag, &payload);
        if !self.secrets.verify_parts(&parts, &sealed[mac_at..]) {
            return Err(SignatureError::Invalid);
        }
        // Signed, so written by a holder of the secret: an unknown tag is a newer
        // writer's, refused all the same.
        let tag = std::str::from_utf8(tag).map_err(|_| SignatureError::Invalid)?;
        let payload = if tag == "h" {
            let at = payload.get(..8).ok_or(SignatureError::Invalid)?;
            let at = u64::from_be_bytes(at.try_into().expect("8 bytes"));
            let max = u64::try_from(MAX_FLIGHT_AGE.as_millis()).unwrap_or(u64::MAX);
            if self.clock.now_ms().abs_diff(at) > max {
                return Err(SignatureError::Stale);
            }
            payload.slice(8..)
        } else {
            payload
        };
        FleetEvent::from_parts(tag, payload).ok_or(SignatureError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_with(secrets: EntrySecrets, key: &str, fence: u64, token: &str) -> Seal {
        let lease = FleetLease {
            fence,
            token: token.to_owned(),
        };
        Seal::new(Arc::new(secrets), Arc::from(key), lease, Arc::new(|| NOW))
    }

    fn events() -> Vec<FleetEvent> {
        vec![
            FleetEvent::Head(Bytes::from_static(b"\x00\xc8\x01\x00\x00")),
            FleetEvent::Data(Bytes::from_static(b"data: 1\n\n")),
            FleetEvent::Data(Bytes::new()),
            FleetEvent::End,
            FleetEvent::Failed,
        ]
    }

    #[test]
    fn sealed_events_open_at_their_place_only() {
        let s = seal_with(EntrySecrets::new("k1"), "key", 3, "abc");
        for (i, e) in events().into_iter().enumerate() {
            let seq = i as u64 + 1;
            let sealed = s.seal(seq, &e);
            assert!(matches!(sealed, FleetEvent::Data(_)), "engines see data");
            assert_eq!(s.open(seq, sealed.clone()), Ok(e.clone()));
            // Another position, key, fence, token or secret: refused.
            assert_eq!(
                s.open(seq + 1, sealed.clone()),
                Err(SignatureError::Invalid)
            );
            for other in [
                seal_with(EntrySecrets::new("k1"), "kez", 3, "abc"),
                seal_with(EntrySecrets::new("k1"), "key", 4, "abc"),
                seal_with(EntrySecrets::new("k1"), "key", 3, "abd"),
                seal_with(EntrySecrets::new("k2"), "key", 3, "abc"),
            ] {
                assert_eq!(
                    other.open(seq, sealed.clone()),
                    Err(SignatureError::Invalid)
                );
            }
            // Every flipped bit and every cut is refused.
            let FleetEvent::Data(b) = &sealed else {
                unreachable!()
            };
            for at in 0..b.len() {
                let mut v = b.to_vec();
                v[at] ^= 0x01;
                assert!(s.open(seq, FleetEvent::Data(v.into())).is_err(), "{at}");
            }
            for len in 0..b.len() {
                assert!(s.open(seq, FleetEvent::Data(b.slice(..len))).is_err());
            }
            // The plain event, as an unsigned leader publishes it: refused.
            assert!(s.open(seq, e).is_err());
        }
    }

    const NOW: u64 = 1_764_600_000_000;

    #[test]
    fn a_head_replayed_long_after_its_flight_is_stale() {
        let s = seal_with(EntrySecrets::new("k1"), "key", 3, "abc");
        let head = FleetEvent::Head(Bytes::from_static(b"head"));
        let sealed = s.seal(1, &head);
        let max = MAX_FLIGHT_AGE.as_millis() as u64;
        for (now, ok) in [
            (NOW + max, true),
            (NOW + max + 1, false),
            (NOW - max - 1, false),
        ] {
            let later = Seal {
                clock: Arc::new(move || now),
                ..s.clone()
            };
            let got = later.open(1, sealed.clone());
            if ok {
                assert_eq!(got, Ok(head.clone()));
            } else {
                assert_eq!(got, Err(SignatureError::Stale), "{now}");
            }
        }
    }

    #[test]
    fn rotation_opens_events_sealed_with_a_previous_secret() {
        let old = seal_with(EntrySecrets::new("k1"), "key", 1, "t");
        let new = seal_with(EntrySecrets::new("k2").accept("k1"), "key", 1, "t");
        let sealed = old.seal(1, &FleetEvent::End);
        assert_eq!(new.open(1, sealed), Ok(FleetEvent::End));
    }
}
