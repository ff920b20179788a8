//! The write phase: stream each planned entry into the sink, re-verifying member bytes.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::plan::{Entry, Plan};
use crate::scan::Source;
use crate::{EntrySink, Error, InstallReport};

/// Streams a member's (possibly shebang-fixed) bytes, hashing them; the read that would deliver
/// the last byte first checks the hash and that the member ends there, and fails instead if
/// either is wrong, so a sink never completes an entry with unplanned bytes.
struct Verifying<'a, R: Read> {
    inner: R,
    prefix: &'a [u8],
    skip: u64,
    remaining: u64,
    expected: [u8; 32],
    hasher: Sha256,
    verified: bool,
    changed: bool,
    inner_failed: bool,
}

impl<R: Read> Verifying<'_, R> {
    fn changed(&mut self, what: &str) -> io::Error {
        self.changed = true;
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("wheel member changed since it was verified: {what}"),
        )
    }

    fn finish(&mut self) -> io::Result<()> {
        if self.verified {
            return Ok(());
        }
        let got: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if got != self.expected {
            return Err(self.changed("sha256 differs"));
        }
        // The member must end here (this read also makes the zip reader check its CRC).
        let mut probe = [0u8; 1];
        loop {
            match self.inner.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => return Err(self.changed("longer than planned")),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.inner_failed = true;
                    return Err(e);
                }
            }
        }
        self.verified = true;
        Ok(())
    }
}

impl<R: Read> Read for Verifying<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            self.finish()?;
            return Ok(0);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.skip > 0 {
            let skipped = io::copy(&mut (&mut self.inner).take(self.skip), &mut io::sink())
                .inspect_err(|_| {
                    self.inner_failed = true;
                })?;
            if skipped != self.skip {
                return Err(self.changed("shorter than planned"));
            }
            self.skip = 0;
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = if !self.prefix.is_empty() {
            let n = want.min(self.prefix.len());
            buf[..n].copy_from_slice(&self.prefix[..n]);
            self.prefix = &self.prefix[n..];
            n
        } else {
            let n = loop {
                match self.inner.read(&mut buf[..want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.inner_failed = true;
                        return Err(e);
                    }
                    Ok(n) => break n,
                }
            };
            if n == 0 {
                return Err(self.changed("shorter than planned"));
            }
            n
        };
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        if self.remaining == 0 {
            self.finish()?;
        }
        Ok(n)
    }
}

pub(crate) fn write(plan: Plan, sink: &mut dyn EntrySink) -> Result<InstallReport, Error> {
    let Plan {
        mut wheels,
        entries,
        shebang_line,
        report,
    } = plan;
    for entry in entries {
        match entry {
            Entry::Dir { path, mode, owner } => sink
                .dir_owned(&path, mode, owner)
                .map_err(|source| Error::Sink { path, source })?,
            Entry::Whiteout { path } => sink
                .whiteout(&path)
                .map_err(|source| Error::Sink { path, source })?,
            Entry::File {
                path,
                mode,
                owner,
                size,
                sha256,
                wheel,
                source,
            } => match source {
                Source::Generated(bytes) => {
                    sink.file_owned(&path, mode, owner, size, &mut &bytes[..])
                        .map_err(|source| Error::Sink { path, source })?;
                }
                Source::Member { index, name, skip } => {
                    let w = &mut wheels[wheel];
                    let wheel_name = w.filename.clone();
                    let member = w
                        .archive
                        .by_index_with_options(index, crate::scan::read_options())
                        .map_err(|e| Error::Zip {
                            wheel: wheel_name.clone(),
                            member: Some(name.clone()),
                            source: e,
                        })?;
                    let mut reader = Verifying {
                        inner: member,
                        prefix: if skip.is_some() {
                            &shebang_line[..]
                        } else {
                            &[]
                        },
                        skip: skip.unwrap_or(0),
                        remaining: size,
                        expected: sha256,
                        hasher: Sha256::new(),
                        verified: false,
                        changed: false,
                        inner_failed: false,
                    };
                    let result = sink.file_owned(&path, mode, owner, size, &mut reader);
                    if reader.changed {
                        return Err(Error::ChangedDuringInstall {
                            wheel: wheel_name,
                            member: name,
                        });
                    }
                    if let (true, Err(e)) = (reader.inner_failed, &result) {
                        let source = io::Error::new(e.kind(), e.to_string()).into();
                        return Err(Error::Zip {
                            wheel: wheel_name,
                            member: Some(name),
                            source,
                        });
                    }
                    result.map_err(|source| Error::Sink {
                        path: path.clone(),
                        source,
                    })?;
                    if reader.remaining != 0 {
                        return Err(Error::Sink {
                            path,
                            source: io::Error::other("the sink did not read the whole file"),
                        });
                    }
                    if let Err(e) = reader.finish() {
                        if reader.changed {
                            return Err(Error::ChangedDuringInstall {
                                wheel: wheel_name,
                                member: name,
                            });
                        }
                        return Err(Error::Zip {
                            wheel: wheel_name,
                            member: Some(name),
                            source: e.into(),
                        });
                    }
                }
            },
        }
    }
    Ok(report)
}
