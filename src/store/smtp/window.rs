//! The pipelining window (RFC 2920): messages sent whose answers are still to be read, and the
//! reading of those answers in the order the messages went out. Separate from the sending
//! ([`super::transaction`]) because a message's verdict may arrive only after later messages
//! were sent, and a connection lost while answers are pending leaves their fate unknown.

use std::io::{Read, Write};

use super::codec::Reply;
use super::{Deliverer, DeliveryError, Verdict};

/// A message sent whose answers are still to be read, in order.
#[derive(Debug)]
pub(super) struct Pending {
    /// An RSET went before its MAIL.
    pub(super) rset: bool,
    pub(super) kind: PendingKind,
}

#[derive(Debug)]
pub(super) enum PendingKind {
    /// `MAIL`, `RCPT` (one recipient) and `BDAT n LAST` with the message: three answers.
    Bdat,
    /// The envelope was answered and the message sent after DATA: its final answers (LMTP:
    /// one per accepted recipient), and the recipients refused for good before DATA.
    Final {
        answers: usize,
        refused: Vec<(String, Reply)>,
    },
}

impl<S: Read + Write> Deliverer<S> {
    /// Reads the answers of every message in flight, appending their verdicts to `settled`.
    pub fn settle(&mut self, settled: &mut Vec<Verdict>) -> Result<(), DeliveryError> {
        while !self.pending.is_empty() {
            settled.push(self.settle_one()?);
        }
        Ok(())
    }

    /// Reads the answers of the oldest message in flight. The message was sent in full, so a
    /// connection lost now leaves its fate unknown ([`DeliveryError::Unconfirmed`]).
    pub(super) fn settle_one(&mut self) -> Result<Verdict, DeliveryError> {
        let pending = self.pending.pop_front().expect("a message in flight");
        self.read_pending(&pending).map_err(|e| match e {
            DeliveryError::Io { protocol, source } => {
                DeliveryError::Unconfirmed { protocol, source }
            }
            other => other,
        })
    }

    fn read_pending(&mut self, pending: &Pending) -> Result<Verdict, DeliveryError> {
        if pending.rset {
            let reply = self.read_reply()?;
            if !reply.is_positive() {
                return Err(self.unexpected("RSET", &reply));
            }
        }
        match pending.kind {
            PendingKind::Final {
                answers,
                ref refused,
            } => Ok(partly(self.read_final(answers)?, refused)),
            PendingKind::Bdat => {
                let mail = self.read_reply()?;
                let rcpt = self.read_reply()?;
                // One answer to BDAT LAST whether or not the recipient was accepted (RFC 2033
                // §4.2 for LMTP: one per accepted recipient, else the command fails once).
                let last = self.read_reply()?;
                let sender_refused = !mail.is_positive();
                let refusal = [mail, rcpt].into_iter().find(|r| !r.is_positive());
                if let Some(refusal) = refusal {
                    if last.is_positive() {
                        return Err(DeliveryError::Protocol {
                            protocol: self.protocol,
                            detail: format!(
                                "it accepted the message after refusing the envelope ({refusal})"
                            ),
                        });
                    }
                    if !refusal.is_transient() && !refusal.is_permanent() {
                        return Err(self.unexpected("the envelope", &refusal));
                    }
                    return Ok(self.envelope_verdict(refusal, sender_refused));
                }
                if last.is_positive() {
                    Ok(Verdict::Delivered)
                } else if last.is_transient() || last.is_permanent() {
                    Ok(self.verdict_of(last))
                } else {
                    Err(self.unexpected("BDAT", &last))
                }
            }
        }
    }

    /// Reads the `answers` final replies after a message sent with DATA; the worst decides.
    pub(super) fn read_final(&mut self, answers: usize) -> Result<Verdict, DeliveryError> {
        let mut worst: Option<Reply> = None;
        for _ in 0..answers {
            let reply = self.read_reply().map_err(|e| match e {
                DeliveryError::Io { protocol, source } => {
                    DeliveryError::Unconfirmed { protocol, source }
                }
                other => other,
            })?;
            if reply.is_positive() {
                continue;
            }
            if !reply.is_transient() && !reply.is_permanent() {
                return Err(self.unexpected("the end of the message", &reply));
            }
            let replace = match &worst {
                None => true,
                Some(w) => reply.is_transient() && !w.is_transient(),
            };
            if replace {
                worst = Some(reply);
            }
        }
        Ok(match worst {
            None => Verdict::Delivered,
            Some(reply) => self.verdict_of(reply),
        })
    }
}

/// `verdict` on a message whose `refused` recipients were refused before DATA: delivered to the
/// others, it is [`Verdict::PartlyDelivered`].
pub(super) fn partly(verdict: Verdict, refused: &[(String, Reply)]) -> Verdict {
    match verdict {
        Verdict::Delivered if !refused.is_empty() => Verdict::PartlyDelivered {
            refused: refused.to_vec(),
        },
        other => other,
    }
}
