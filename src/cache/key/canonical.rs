//! The canonical form of a JSON body: one pass that validates the document, sorts
//! object members by name, drops insignificant whitespace and normalizes string
//! escapes, writing only the parts that change (see the [module docs](super)).

/// A member of an object being canonicalized: offsets into the canonical form (see
/// [`View`]).
#[derive(Clone, Copy)]
pub(super) struct Member {
    /// Start of the key's content (after the opening quote).
    pub(super) key_start: u32,
    /// End of the key's content (the closing quote).
    pub(super) key_end: u32,
    /// Start of the member (the opening quote of the key).
    pub(super) start: u32,
    /// End of the member (after its value).
    pub(super) end: u32,
    /// The first 8 bytes of the key, big-endian, zero-padded: comparing prefixes orders
    /// keys like comparing their bytes whenever the prefixes differ.
    pub(super) prefix: u64,
}

/// The sort prefix of the key `src[start..end]` (see [`Member::prefix`]): one 8-byte
/// load with the bytes past the key masked off (a key is always followed by at least
/// `":` and a value, so the load rarely needs the copying fallback).
#[inline]
pub(super) fn key_prefix(src: &[u8], start: usize, end: usize) -> u64 {
    let n = (end - start).min(8);
    if n == 0 {
        return 0;
    }
    let mask = u64::MAX << (8 * (8 - n));
    match src.get(start..start + 8) {
        Some(w) => u64::from_be_bytes(w.try_into().expect("8 bytes")) & mask,
        None => {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&src[start..start + n]);
            u64::from_be_bytes(b)
        }
    }
}

/// Orders members by key bytes: by prefix, then (on a tie) by the whole key.
#[inline]
pub(super) fn member_cmp<'k>(
    a: &Member,
    b: &Member,
    key: &impl Fn(&Member) -> &'k [u8],
) -> std::cmp::Ordering {
    match a.prefix.cmp(&b.prefix) {
        std::cmp::Ordering::Equal => key_cmp(key(a), key(b)),
        o => o,
    }
}

/// Reusable buffers: the canonical output, the member stack and a copy area.
#[derive(Default)]
pub(super) struct Scratch {
    /// The input without insignificant whitespace; nested objects are reordered in
    /// place once complete.
    pub(super) out: Vec<u8>,
    pub(super) members: Vec<Member>,
    pub(super) tmp: Vec<u8>,
    /// `Some(n)`: the top-level object was left in input order and `members[..n]` lists
    /// its members in key order.
    pub(super) top: Option<usize>,
    /// The canonical form is `out` followed by `input[tail..]`.
    pub(super) tail: usize,
}

impl Scratch {
    pub(super) fn trim(&mut self) {
        const KEEP: usize = 1 << 20;
        if self.out.capacity() > KEEP {
            self.out = Vec::new();
        }
        if self.tmp.capacity() > KEEP {
            self.tmp = Vec::new();
        }
        if self.members.capacity() > 4096 {
            self.members = Vec::new();
        }
    }
}

pub(super) const MAX_DEPTH: u32 = 128;

/// One pass over `input`. The output (`out` followed by `input[tail..]`) is the input
/// with whitespace removed (copied in runs, not token by token, and only as far as
/// needed) and objects reordered by key. With `defer_top`, the top-level object is not
/// moved; its sorted member list is left in `members`.
pub(super) fn canonicalize(input: &[u8], s: &mut Scratch, defer_top: bool) -> bool {
    s.out.clear();
    s.members.clear();
    s.top = None;
    s.tail = 0;
    if input.len() >= u32::MAX as usize {
        return false;
    }
    s.out.reserve(input.len());
    let mut p = Parser {
        src: input,
        pos: 0,
        flushed: 0,
        defer_top,
        s,
    };
    p.ws();
    if p.value(0).is_err() {
        return false;
    }
    p.ws();
    p.s.tail = p.flushed;
    p.pos == input.len()
}

pub(super) struct Parser<'a> {
    pub(super) src: &'a [u8],
    pub(super) pos: usize,
    /// `src[..flushed]` has been copied to `out` (or skipped as whitespace).
    pub(super) flushed: usize,
    pub(super) defer_top: bool,
    pub(super) s: &'a mut Scratch,
}

pub(super) type R = Result<(), ()>;

#[inline]
pub(super) fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Byte-wise comparison of two (short) keys, without a `memcmp` call for the common
/// case of keys that differ early.
#[inline]
pub(super) fn key_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

pub(super) const ONES: u64 = 0x0101_0101_0101_0101;
pub(super) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of every byte of `w` (little-endian) that is `"` or `\`, possibly with
/// false hits *above* a true one: the lowest set bit is always exact.
#[inline]
pub(super) fn stops(w: u64) -> u64 {
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    zero(w ^ (ONES * b'"' as u64)) | zero(w ^ (ONES * b'\\' as u64))
}

#[inline]
pub(super) fn word(src: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(src[i..i + 8].try_into().expect("8 bytes"))
}

/// Index of the first `"` or `\` at or after `i`.
///
/// Scans 16 bytes at a time with word-wide (SWAR) arithmetic (no `unsafe`, no
/// intrinsics).
#[inline]
pub(super) fn find_quote_or_backslash(src: &[u8], mut i: usize) -> Option<usize> {
    while i + 16 <= src.len() {
        let (a, b) = (stops(word(src, i)), stops(word(src, i + 8)));
        if a | b != 0 {
            let bit = if a != 0 {
                a.trailing_zeros()
            } else {
                64 + b.trailing_zeros()
            };
            return Some(i + (bit / 8) as usize);
        }
        i += 16;
    }
    if i + 8 <= src.len() {
        let a = stops(word(src, i));
        if a != 0 {
            return Some(i + (a.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    src.get(i..)?
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|r| i + r)
}

/// Whether a member name is spelled the one way serde_json (and most serializers) spell
/// it: valid UTF-8 without raw control characters, and only the escapes `\"`, `\\`, `\b`, `\f`, `\n`,
/// `\r`, `\t` and `\u00xx` (lowercase) for the other control characters. Sorting
/// members by the raw bytes of such names never moves two members with the same decoded
/// name past each other (same name, same bytes, and the sort is stable), so the
/// canonical form keeps the meaning for first-wins and last-wins parsers alike. Any other
/// spelling (`\/`, `\u0041`, a raw control character...) could alias another member's
/// name: the body is then hashed raw.
#[inline]
pub(super) fn is_canonical_name(name: &[u8]) -> bool {
    if name
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
    {
        return true; // the usual case
    }
    if std::str::from_utf8(name).is_err() {
        return false;
    }
    let mut i = 0;
    while i < name.len() {
        match name[i] {
            0..0x20 => return false,
            b'\\' => match name.get(i + 1) {
                Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => {
                    let code = match name.get(i + 2..i + 6) {
                        Some([b'0', b'0', hi @ (b'0' | b'1'), lo]) if !lo.is_ascii_uppercase() => {
                            let lo = (*lo as char).to_digit(16);
                            lo.map(|lo| (u32::from(hi - b'0') << 4) | lo)
                        }
                        _ => None,
                    };
                    // Control characters with a short escape must use it.
                    match code {
                        Some(0x08 | 0x09 | 0x0a | 0x0c | 0x0d) | None => return false,
                        Some(_) => i += 6,
                    }
                }
                _ => return false,
            },
            _ => i += 1,
        }
    }
    true
}

/// Whether `src[start..end]` is all printable ASCII other than `\\` (`0x20..0x80`),
/// checked 8 bytes at a time: the names of a typical request are short and end before
/// the input does (a name is always followed by at least `":` and a value), so most
/// take one or two word loads.
#[inline]
pub(super) fn plain_ascii(src: &[u8], mut start: usize, end: usize) -> bool {
    // A byte below 0x20 borrows into its own high bit; a byte at or above 0x80 has it
    // set. A borrow only moves upwards, so a flagged byte below `end` is exact.
    let flags = |w: u64| (w.wrapping_sub(ONES * 0x20) | w) & HIGHS;
    while start + 8 <= end {
        if flags(word(src, start)) != 0 {
            return false;
        }
        start += 8;
    }
    let n = end - start;
    if n == 0 {
        return true;
    }
    let w = match src.get(start..start + 8) {
        Some(_) => word(src, start),
        None => {
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&src[start..end]);
            u64::from_le_bytes(b)
        }
    };
    flags(w) & (HIGHS >> (8 * (8 - n))) == 0
}

/// How far an escape `\x` advances, by `x`: 2, 6 for `\u` (then 4 hex digits are
/// checked), 0 for an invalid escape.
pub(super) const ESCAPE_LEN: [u8; 256] = {
    let mut t = [0u8; 256];
    let simple = b"\"\\/bfnrt";
    let mut i = 0;
    while i < simple.len() {
        t[simple[i] as usize] = 2;
        i += 1;
    }
    t[b'u' as usize] = 6;
    t
};

impl Parser<'_> {
    /// The output offset corresponding to the current input position.
    #[inline]
    pub(super) fn out_pos(&self) -> usize {
        self.s.out.len() + (self.pos - self.flushed)
    }

    #[inline]
    pub(super) fn flush(&mut self) {
        if self.pos > self.flushed {
            self.s
                .out
                .extend_from_slice(&self.src[self.flushed..self.pos]);
        }
        self.flushed = self.pos;
    }

    #[inline]
    pub(super) fn ws(&mut self) {
        if self.src.get(self.pos).is_some_and(|&b| is_ws(b)) {
            self.flush();
            self.pos += 1;
            while self.src.get(self.pos).is_some_and(|&b| is_ws(b)) {
                self.pos += 1;
            }
            self.flushed = self.pos;
        }
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    pub(super) fn value(&mut self, depth: u32) -> R {
        match self.peek().ok_or(())? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(()),
        }
    }

    pub(super) fn literal(&mut self, lit: &[u8]) -> R {
        if self.src[self.pos..].starts_with(lit) {
            self.pos += lit.len();
            Ok(())
        } else {
            Err(())
        }
    }

    pub(super) fn number(&mut self) -> R {
        let src = self.src;
        let mut i = self.pos;
        let digits = |i: &mut usize| {
            let b = *i;
            while src.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > b
        };
        if src.get(i) == Some(&b'-') {
            i += 1;
        }
        if src.get(i) == Some(&b'0') {
            i += 1;
        } else if !digits(&mut i) {
            return Err(());
        }
        if src.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return Err(());
            }
        }
        if matches!(src.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(src.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digits(&mut i) {
                return Err(());
            }
        }
        self.pos = i;
        Ok(())
    }

    /// Skips a string token, kept byte-exact (escapes are validated, not rewritten).
    #[inline]
    pub(super) fn string(&mut self) -> R {
        let src = self.src;
        let mut i = self.pos + 1;
        loop {
            i = find_quote_or_backslash(src, i).ok_or(())?;
            if src[i] == b'"' {
                self.pos = i + 1;
                return Ok(());
            }
            let step = ESCAPE_LEN[*src.get(i + 1).ok_or(())? as usize];
            if step == 6 {
                let hex = src.get(i + 2..i + 6).ok_or(())?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return Err(());
                }
            } else if step == 0 {
                return Err(());
            }
            i += step as usize;
        }
    }

    /// Skips a member name, which must be spelled the one way [`is_canonical_name`]
    /// accepts (otherwise the body is hashed raw). The scan for the closing quote
    /// already tells whether the name holds an escape; a name without one (the usual
    /// case) only needs a word-wide look for control and non-ASCII bytes.
    #[inline]
    pub(super) fn name(&mut self) -> R {
        let src = self.src;
        let start = self.pos + 1;
        let end = find_quote_or_backslash(src, start).ok_or(())?;
        if src[end] == b'"' {
            self.pos = end + 1;
            if plain_ascii(src, start, end) || is_canonical_name(&src[start..end]) {
                return Ok(());
            }
            return Err(());
        }
        self.string()?;
        if is_canonical_name(&src[start..self.pos - 1]) {
            Ok(())
        } else {
            Err(()) // hashed raw: see `is_canonical_name`
        }
    }

    pub(super) fn array(&mut self, depth: u32) -> R {
        if depth > MAX_DEPTH {
            return Err(());
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.peek().ok_or(())? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b']' => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(()),
            }
        }
    }

    pub(super) fn object(&mut self, depth: u32) -> R {
        if depth > MAX_DEPTH {
            return Err(());
        }
        let open = self.pos;
        self.pos += 1;
        let body_start = self.out_pos();
        let base = self.s.members.len();
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(());
            }
            let start = self.out_pos() as u32;
            let key_in = self.pos + 1;
            self.name()?;
            let prefix = key_prefix(self.src, key_in, self.pos - 1);
            let key_end = self.out_pos() as u32 - 1;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(());
            }
            self.pos += 1;
            self.ws();
            self.value(depth)?;
            self.s.members.push(Member {
                key_start: start + 1,
                key_end,
                start,
                end: self.out_pos() as u32,
                prefix,
            });
            self.ws();
            match self.peek().ok_or(())? {
                b',' => {
                    self.pos += 1;
                    self.ws();
                }
                b'}' => break,
                _ => return Err(()),
            }
        }
        if depth == 1 && self.defer_top {
            // Sort the top-level member list only, reading each key wherever it is
            // (a key never spans a flush).
            self.pos += 1;
            let src = self.src;
            let Scratch { out, members, .. } = &mut *self.s;
            let n = out.len();
            let shift = self.flushed - n;
            sort_by_key(&mut members[base..], |m| {
                let (a, b) = (m.key_start as usize, m.key_end as usize);
                if a < n {
                    &out[a..b]
                } else {
                    &src[a + shift..b + shift]
                }
            });
            self.s.top = Some(self.s.members.len());
            return Ok(());
        }
        if self.flushed <= open {
            // Nothing of this object has been copied out yet (no whitespace, no nested
            // reordered object): sort by reading the input and copy each member once.
            self.pos += 1;
            self.emit_from_input(base, open);
            self.s.members.truncate(base);
            return Ok(());
        }
        self.flush();
        self.pos += 1;
        let Scratch {
            out, members, tmp, ..
        } = &mut *self.s;
        let ms = &mut members[base..];
        if sort_by_key(ms, |m| &out[m.key_start as usize..m.key_end as usize]) {
            tmp.clear();
            for (i, m) in ms.iter().enumerate() {
                if i > 0 {
                    tmp.push(b',');
                }
                tmp.extend_from_slice(&out[m.start as usize..m.end as usize]);
            }
            out[body_start..body_start + tmp.len()].copy_from_slice(tmp);
        }
        self.s.members.truncate(base);
        Ok(())
    }

    /// Sorts the members of the object that opened at input offset `open` (and just
    /// closed) while they are still only in the input, and writes it out in key order.
    pub(super) fn emit_from_input(&mut self, base: usize, open: usize) {
        let src = self.src;
        let Scratch { out, members, .. } = &mut *self.s;
        // Output offsets map to input offsets by a constant shift while nothing is flushed.
        let shift = self.flushed - out.len();
        let ms = &mut members[base..];
        let moved = sort_by_key(ms, |m| {
            &src[m.key_start as usize + shift..m.key_end as usize + shift]
        });
        if !moved {
            return; // already in order: it is copied lazily with what follows
        }
        out.extend_from_slice(&src[self.flushed..=open]);
        for (i, m) in ms.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&src[m.start as usize + shift..m.end as usize + shift]);
        }
        out.push(b'}');
        self.flushed = self.pos;
    }
}

/// Sorts members by key (stable); `false` when they were already in order.
#[inline]
pub(super) fn sort_by_key<'k>(ms: &mut [Member], key: impl Fn(&Member) -> &'k [u8]) -> bool {
    if ms
        .windows(2)
        .all(|w| member_cmp(&w[0], &w[1], &key).is_le())
    {
        return false;
    }
    if ms.len() <= 16 {
        // Insertion sort: objects are small.
        for i in 1..ms.len() {
            let m = ms[i];
            let mut j = i;
            while j > 0 && member_cmp(&ms[j - 1], &m, &key).is_gt() {
                ms[j] = ms[j - 1];
                j -= 1;
            }
            ms[j] = m;
        }
    } else {
        ms.sort_by(|a, b| member_cmp(a, b, &key));
    }
    true
}
