//! A `Write` sink that only counts: serialised sizes measured without building the bytes.

/// Counts the bytes written to it.
#[derive(Debug, Default)]
pub struct ByteCounter(pub usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
