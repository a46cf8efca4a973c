//! Rampart labels onto Azure PII categories, combined with the pattern matches.
//!
//! Every label in Rampart's `config.json` and what becomes of it:
//!
//! | Rampart label       | Azure category                                                        |
//! |---------------------|-----------------------------------------------------------------------|
//! | `GIVEN_NAME`, `SURNAME` | `Person`; adjacent names (white space between) form one person    |
//! | `EMAIL`             | `Email`                                                               |
//! | `PHONE`             | `PhoneNumber`                                                         |
//! | `URL`               | `URL`                                                                 |
//! | `BUILDING_NUMBER`, `STREET_NAME`, `SECONDARY_ADDRESS`, `CITY`, `STATE`, `ZIP_CODE` | one `Address` per run of parts separated only by white space and commas (see [`super::decode::address_gap`]); a lone `CITY` or `STATE` is not an address |
//! | `CITY`, `STATE`     | also `Location` with subcategory `City` / `State` (inside an address or alone) |
//! | `TAX_ID`, `GOVERNMENT_ID` | `USSocialSecurityNumber` when the text is a valid SSN (`AAA-GG-SSSS`, area not 000, 666 or 9xx, group and serial not zero), `USIndividualTaxpayerIdentification` when it is a valid ITIN (area 9xx, group 50–65, 70–88, 90–92 or 94–99); **dropped** otherwise (Azure has no category for an EIN or a foreign identifier of unknown kind) |
//! | `BANK_ACCOUNT`      | `InternationalBankingAccountNumber` when the text is an IBAN with a valid ISO 13616 check; otherwise `USBankAccountNumber` when it is 4–17 digits (the model is trained on US-style data, with `ROUTING_NUMBER`, `STATE` and `ZIP_CODE`); **dropped** otherwise |
//! | `ROUTING_NUMBER`    | `ABARoutingNumber` when it is nine digits; **dropped** otherwise      |
//! | `PASSPORT`          | `USUKPassportNumber` when it is 6–10 letters and digits with at least one digit; **dropped** otherwise |
//! | `DRIVERS_LICENSE`   | `USDriversLicenseNumber` when it is 4–20 letters, digits and `-` with at least one digit; **dropped** otherwise |
//! | any other label     | **dropped**                                                           |
//!
//! Patterns ([`super::patterns`]) add `Email`, `URL`, `IPAddress`, `PhoneNumber` and dashed
//! `USSocialSecurityNumber` / `USIndividualTaxpayerIdentification` numbers. Where a
//! pattern overlaps model spans, the pattern's range wins (it is validated) and the overlapped
//! model spans give way; the confidence is the model's when the model agreed on the category
//! and was surer than [`PATTERN_CONFIDENCE`]. One exception: a phone-shaped number the model
//! calls a validated identifier (bank account, SSN, …) stays that identifier.

use super::decode::{Family, LabelSet, Span};
use super::patterns::{PatternKind, PatternMatch, TaxpayerKind, us_taxpayer_number};

/// The confidence of an entity found by a pattern alone (Azure's pattern recognisers report
/// fixed scores of this order).
pub const PATTERN_CONFIDENCE: f32 = 0.8;

/// Azure category names used by this model.
pub mod names {
    /// A person's name.
    pub const PERSON: &str = "Person";
    /// An e-mail address.
    pub const EMAIL: &str = "Email";
    /// A phone number.
    pub const PHONE_NUMBER: &str = "PhoneNumber";
    /// A URL.
    pub const URL: &str = "URL";
    /// An IP address (the PII name; entity recognition calls it `IP`).
    pub const IP_ADDRESS: &str = "IPAddress";
    /// An IP address in entity recognition.
    pub const IP: &str = "IP";
    /// A postal address, as one entity.
    pub const ADDRESS: &str = "Address";
    /// A place: a city or a state (subcategory `City` / `State`).
    pub const LOCATION: &str = "Location";
    /// A US social security number.
    pub const US_SSN: &str = "USSocialSecurityNumber";
    /// A US individual taxpayer identification number.
    pub const US_ITIN: &str = "USIndividualTaxpayerIdentification";
    /// A US bank account number.
    pub const US_BANK_ACCOUNT: &str = "USBankAccountNumber";
    /// An IBAN.
    pub const IBAN: &str = "InternationalBankingAccountNumber";
    /// An ABA routing number.
    pub const ABA_ROUTING: &str = "ABARoutingNumber";
    /// A US or UK passport number.
    pub const US_UK_PASSPORT: &str = "USUKPassportNumber";
    /// A US driver's licence number.
    pub const US_DRIVERS_LICENSE: &str = "USDriversLicenseNumber";
    /// The `City` subcategory of `Location`.
    pub const CITY: &str = "City";
    /// The `State` subcategory of `Location`.
    pub const STATE: &str = "State";
}

/// A Rampart entity type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    GivenName,
    Surname,
    Email,
    Phone,
    Url,
    TaxId,
    BankAccount,
    RoutingNumber,
    GovernmentId,
    Passport,
    DriversLicense,
    BuildingNumber,
    StreetName,
    SecondaryAddress,
    City,
    State,
    ZipCode,
}

impl Label {
    fn parse(name: &str) -> Option<Label> {
        Some(match name {
            "GIVEN_NAME" => Label::GivenName,
            "SURNAME" => Label::Surname,
            "EMAIL" => Label::Email,
            "PHONE" => Label::Phone,
            "URL" => Label::Url,
            "TAX_ID" => Label::TaxId,
            "BANK_ACCOUNT" => Label::BankAccount,
            "ROUTING_NUMBER" => Label::RoutingNumber,
            "GOVERNMENT_ID" => Label::GovernmentId,
            "PASSPORT" => Label::Passport,
            "DRIVERS_LICENSE" => Label::DriversLicense,
            "BUILDING_NUMBER" => Label::BuildingNumber,
            "STREET_NAME" => Label::StreetName,
            "SECONDARY_ADDRESS" => Label::SecondaryAddress,
            "CITY" => Label::City,
            "STATE" => Label::State,
            "ZIP_CODE" => Label::ZipCode,
            _ => return None,
        })
    }

    fn is_name(self) -> bool {
        matches!(self, Label::GivenName | Label::Surname)
    }

    fn is_address_part(self) -> bool {
        matches!(
            self,
            Label::BuildingNumber
                | Label::StreetName
                | Label::SecondaryAddress
                | Label::City
                | Label::State
                | Label::ZipCode
        )
    }
}

/// An entity found in a document: a byte range with its Azure category.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Found {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// Azure category.
    pub category: &'static str,
    /// Azure subcategory.
    pub subcategory: Option<&'static str>,
    /// Confidence in [0, 1].
    pub confidence: f32,
}

/// A model span with its label, or an identifier already given its category.
#[derive(Debug, Clone)]
struct Part {
    start: usize,
    end: usize,
    label: Label,
    /// For identifiers: the validated Azure category.
    category: Option<&'static str>,
    confidence: f32,
    tokens: usize,
}

/// Maps decoded model spans and pattern matches of one document onto Azure entities, sorted by
/// start (a longer entity first where two start together).
pub(crate) fn entities(
    text: &str,
    spans: &[Span],
    labels: &LabelSet,
    patterns: &[PatternMatch],
) -> Vec<Found> {
    // Model spans with a known label; identifiers validated (or dropped) now, so an invalid
    // identifier cannot hide a phone number.
    let mut parts: Vec<Part> = spans
        .iter()
        .filter_map(|s| {
            let label = Label::parse(labels.types.get(s.ty)?)?;
            let category = match label {
                Label::TaxId
                | Label::GovernmentId
                | Label::BankAccount
                | Label::RoutingNumber
                | Label::Passport
                | Label::DriversLicense => {
                    Some(identifier_category(label, text.get(s.start..s.end)?)?)
                }
                _ => None,
            };
            Some(Part {
                start: s.start,
                end: s.end,
                label,
                category,
                confidence: s.confidence,
                tokens: s.tokens.max(1),
            })
        })
        .collect();

    let mut found = Vec::new();
    for pattern in patterns {
        let overlaps = |p: &Part| p.start < pattern.end && pattern.start < p.end;
        let category = match pattern.kind {
            PatternKind::Email => names::EMAIL,
            PatternKind::Url => names::URL,
            PatternKind::IpAddress => names::IP_ADDRESS,
            PatternKind::Phone => names::PHONE_NUMBER,
            PatternKind::Taxpayer(kind) => kind.category(),
        };
        // A phone-shaped number the model calls an identifier stays that identifier; one
        // that is SSN-shaped is an SSN whatever the model says.
        if pattern.kind == PatternKind::Phone
            && parts.iter().any(|p| overlaps(p) && p.category.is_some())
        {
            continue;
        }
        let agreed = parts
            .iter()
            .filter(|p| overlaps(p) && model_category(p) == Some(category))
            .map(|p| p.confidence)
            .fold(PATTERN_CONFIDENCE, f32::max);
        found.push(Found {
            start: pattern.start,
            end: pattern.end,
            category,
            subcategory: None,
            confidence: agreed,
        });
        // Model spans give way; what sticks out of the pattern on either side stays if it has
        // a letter or digit.
        let mut rest = Vec::with_capacity(parts.len());
        for part in parts.drain(..) {
            if !overlaps(&part) {
                rest.push(part);
                continue;
            }
            for (start, end) in [(part.start, pattern.start), (pattern.end, part.end)] {
                if start < end
                    && let Some((start, end)) = trim(text, start, end)
                {
                    rest.push(Part {
                        start,
                        end,
                        ..part.clone()
                    });
                }
            }
        }
        parts = rest;
    }
    parts.sort_by_key(|p| p.start);

    let mut i = 0;
    while i < parts.len() {
        let part = &parts[i];
        if part.label.is_name() || part.label.is_address_part() {
            let is_name = part.label.is_name();
            let mut j = i + 1;
            let family = if is_name {
                Family::Name
            } else {
                Family::Address
            };
            while j < parts.len() {
                let (prev, next) = (&parts[j - 1], &parts[j]);
                let same_family = if is_name {
                    next.label.is_name()
                } else {
                    next.label.is_address_part()
                };
                let same_group =
                    same_family && family.joins(text, prev.start, prev.end, next.start);
                if !same_group {
                    break;
                }
                j += 1;
            }
            let group = &parts[i..j];
            let tokens: usize = group.iter().map(|p| p.tokens).sum();
            let confidence = group
                .iter()
                .map(|p| p.confidence * p.tokens as f32)
                .sum::<f32>()
                / tokens as f32;
            let (start, end) = (group[0].start, group[group.len() - 1].end);
            if is_name {
                found.push(Found {
                    start,
                    end,
                    category: names::PERSON,
                    subcategory: None,
                    confidence,
                });
            } else {
                let street_level = group
                    .iter()
                    .any(|p| !matches!(p.label, Label::City | Label::State));
                if group.len() >= 2 || street_level {
                    found.push(Found {
                        start,
                        end,
                        category: names::ADDRESS,
                        subcategory: None,
                        confidence,
                    });
                }
                for p in group {
                    let subcategory = match p.label {
                        Label::City => names::CITY,
                        Label::State => names::STATE,
                        _ => continue,
                    };
                    found.push(Found {
                        start: p.start,
                        end: p.end,
                        category: names::LOCATION,
                        subcategory: Some(subcategory),
                        confidence: p.confidence,
                    });
                }
            }
            i = j;
            continue;
        }
        if let Some(category) = model_category(part) {
            found.push(Found {
                start: part.start,
                end: part.end,
                category,
                subcategory: None,
                confidence: part.confidence,
            });
        }
        i += 1;
    }
    found.sort_by_key(|f| (f.start, std::cmp::Reverse(f.end)));
    found
}

/// The category of a single model part that is neither a name nor an address part.
fn model_category(part: &Part) -> Option<&'static str> {
    match part.label {
        Label::Email => Some(names::EMAIL),
        Label::Phone => Some(names::PHONE_NUMBER),
        Label::Url => Some(names::URL),
        Label::GivenName | Label::Surname => Some(names::PERSON),
        _ => part.category,
    }
}

/// `start..end` less surrounding white space and punctuation, if a letter or digit is left.
fn trim(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let s = text.get(start..end)?;
    let lead = s.len() - s.trim_start_matches(|c: char| !c.is_alphanumeric()).len();
    let core = s.trim_matches(|c: char| !c.is_alphanumeric());
    (!core.is_empty()).then_some((start + lead, start + lead + core.len()))
}

/// The validated Azure category of an identifier, or `None` to drop it.
fn identifier_category(label: Label, text: &str) -> Option<&'static str> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let only = |allowed: &dyn Fn(char) -> bool| text.chars().all(allowed);
    match label {
        Label::TaxId | Label::GovernmentId => us_taxpayer_number(text).map(TaxpayerKind::category),
        Label::BankAccount => {
            if is_iban(text) {
                Some(names::IBAN)
            } else if only(&|c| c.is_ascii_digit() || c == ' ' || c == '-')
                && (4..=17).contains(&digits.len())
            {
                Some(names::US_BANK_ACCOUNT)
            } else {
                None
            }
        }
        Label::RoutingNumber => (only(&|c| c.is_ascii_digit() || c == ' ' || c == '-')
            && digits.len() == 9)
            .then_some(names::ABA_ROUTING),
        Label::Passport => {
            let n = text.chars().count();
            (only(&|c| c.is_ascii_alphanumeric()) && (6..=10).contains(&n) && !digits.is_empty())
                .then_some(names::US_UK_PASSPORT)
        }
        Label::DriversLicense => {
            let n = text.chars().count();
            (only(&|c| c.is_ascii_alphanumeric() || c == '-')
                && (4..=20).contains(&n)
                && !digits.is_empty())
            .then_some(names::US_DRIVERS_LICENSE)
        }
        _ => None,
    }
}

/// Whether `text` is an IBAN (spaces allowed) with a valid ISO 13616 mod-97 check.
pub(crate) fn is_iban(text: &str) -> bool {
    let compact: Vec<u8> = text
        .bytes()
        .filter(|b| *b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if !(15..=34).contains(&compact.len())
        || !compact[..2].iter().all(u8::is_ascii_uppercase)
        || !compact[2..4].iter().all(u8::is_ascii_digit)
        || !compact.iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let rearranged = compact[4..].iter().chain(&compact[..4]);
    let mut rem = 0u32;
    for &c in rearranged {
        let value = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        rem = if value >= 10 {
            (rem * 100 + value) % 97
        } else {
            (rem * 10 + value) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pii::patterns;

    const LABELS: [&str; 13] = [
        "O",
        "B-GIVEN_NAME",
        "B-SURNAME",
        "B-EMAIL",
        "B-PHONE",
        "B-STREET_NAME",
        "B-CITY",
        "B-STATE",
        "B-ZIP_CODE",
        "B-BUILDING_NUMBER",
        "B-TAX_ID",
        "B-BANK_ACCOUNT",
        "B-FAVOURITE_COLOUR",
    ];

    fn span(text: &str, part: &str, label: &str, labels: &LabelSet) -> Span {
        let start = text.find(part).unwrap();
        Span {
            start,
            end: start + part.len(),
            ty: labels.types.iter().position(|t| t == label).unwrap(),
            confidence: 0.9,
            tokens: 1,
        }
    }

    fn run(
        text: &str,
        model: &[(&str, &str)],
    ) -> Vec<(String, &'static str, Option<&'static str>)> {
        let labels = LabelSet::new(&LABELS);
        let spans: Vec<Span> = model
            .iter()
            .map(|(part, label)| span(text, part, label, &labels))
            .collect();
        entities(text, &spans, &labels, &patterns::find_all(text))
            .into_iter()
            .map(|f| (text[f.start..f.end].to_string(), f.category, f.subcategory))
            .collect()
    }

    #[test]
    fn names_and_address_parts_are_grouped() {
        let text = "John Smith lives at 221 Baker Street, Springfield, IL 62704.";
        let got = run(
            text,
            &[
                ("John", "GIVEN_NAME"),
                ("Smith", "SURNAME"),
                ("221", "BUILDING_NUMBER"),
                ("Baker Street", "STREET_NAME"),
                ("Springfield", "CITY"),
                ("IL", "STATE"),
                ("62704", "ZIP_CODE"),
            ],
        );
        assert_eq!(
            got,
            [
                ("John Smith".to_string(), names::PERSON, None),
                (
                    "221 Baker Street, Springfield, IL 62704".to_string(),
                    names::ADDRESS,
                    None
                ),
                (
                    "Springfield".to_string(),
                    names::LOCATION,
                    Some(names::CITY)
                ),
                ("IL".to_string(), names::LOCATION, Some(names::STATE)),
            ]
        );
    }

    #[test]
    fn a_lone_city_is_a_location_not_an_address() {
        let got = run("I moved to Chicago.", &[("Chicago", "CITY")]);
        assert_eq!(
            got,
            [("Chicago".to_string(), names::LOCATION, Some(names::CITY))]
        );
    }

    #[test]
    fn patterns_win_over_partial_model_spans() {
        let text = "call 415-555-0132 or mail a.b@example.com";
        let got = run(text, &[("415", "PHONE"), ("a.b", "GIVEN_NAME")]);
        assert_eq!(
            got,
            [
                ("415-555-0132".to_string(), names::PHONE_NUMBER, None),
                ("a.b@example.com".to_string(), names::EMAIL, None),
            ]
        );
    }

    #[test]
    fn identifiers_are_validated_and_unknown_labels_dropped() {
        let text = "SSN 123-45-6789, EIN 12-3456789, acct 4155550132, blue";
        let got = run(
            text,
            &[
                ("123-45-6789", "TAX_ID"),
                ("12-3456789", "TAX_ID"),
                ("4155550132", "BANK_ACCOUNT"),
                ("blue", "FAVOURITE_COLOUR"),
            ],
        );
        assert_eq!(
            got,
            [
                ("123-45-6789".to_string(), names::US_SSN, None),
                ("4155550132".to_string(), names::US_BANK_ACCOUNT, None),
            ]
        );
    }

    #[test]
    fn a_validated_identifier_keeps_a_phone_shaped_number() {
        let text = "account 415-555-0132";
        let got = run(text, &[("415-555-0132", "BANK_ACCOUNT")]);
        assert_eq!(
            got,
            [("415-555-0132".to_string(), names::US_BANK_ACCOUNT, None)]
        );
    }

    #[test]
    fn taxpayer_numbers_and_ibans() {
        let category = |t: &str| us_taxpayer_number(t).map(TaxpayerKind::category);
        assert_eq!(category("123-45-6789"), Some(names::US_SSN));
        assert_eq!(category("123456789"), Some(names::US_SSN));
        assert_eq!(category("666-45-6789"), None);
        assert_eq!(category("123-00-6789"), None);
        assert_eq!(category("912-70-1234"), Some(names::US_ITIN));
        assert_eq!(category("912-40-1234"), None);
        assert_eq!(category("12-3456789"), None);
        assert!(is_iban("GB82 WEST 1234 5698 7654 32"));
        assert!(is_iban("DE89370400440532013000"));
        assert!(!is_iban("DE89370400440532013001"));
    }
}
