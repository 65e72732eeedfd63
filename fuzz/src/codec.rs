//! The primitives of the input encodings: big-endian integers and blobs (a `u16`
//! big-endian length, then that many bytes, or fewer if the input ends first).

/// Reads fields off the front of a fuzz input.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { rest: data }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    /// One byte.
    pub fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    /// A blob; a length past the end takes what is left.
    pub fn blob(&mut self) -> Option<Vec<u8>> {
        let len = usize::from(self.u16()?).min(self.rest.len());
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(head.to_vec())
    }

    /// Everything left.
    pub fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.rest).to_vec()
    }
}

/// Writes fields in the layout [`Reader`] reads.
#[derive(Debug, Default)]
pub struct Writer {
    /// What has been written.
    pub out: Vec<u8>,
}

impl Writer {
    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    /// A blob. Only seeds are written, so a blob too long for its length field is a bug
    /// in the seed writer.
    pub fn blob(&mut self, v: &[u8]) {
        let len = u16::try_from(v.len()).expect("a seed blob longer than 65535 bytes");
        self.u16(len);
        self.out.extend_from_slice(v);
    }
}
