//! Fitting the worker's retry and dead-letter copies into one AMQP frame
//! (docs/reference.md §4). A message's properties travel in one content header
//! frame, which cannot be split; a copy adds headers to what the broker delivered,
//! and a frame over the negotiated `frame_max` makes RabbitMQ close the whole
//! publishing connection (`frame_too_large`), failing every copy in flight — again
//! at each redelivery. Called by the consumer loop before each copy is published.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

use super::Catalog;
use super::message::{self, DROPPED_HEADERS, header_frame_bytes};

/// Bytes left free below `frame_max`, for a miscount of ours.
const SPARE: usize = 64;
/// The longest `x-jirasync-dropped-headers` value; the names beyond are counted.
const MAX_DROPPED_LIST: usize = 1024;

/// A copy's properties as they will be published.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The properties, fitting one frame.
    pub properties: BasicProperties,
    /// The headers left out (and named in `x-jirasync-dropped-headers`).
    pub dropped: Vec<String>,
    /// Whether some of them are headers §4 defines (a token, a signature, …):
    /// only a message published around the ingress can carry such large ones.
    pub dropped_defined: bool,
}

/// Whether `props` fit a frame of `frame_max` bytes (0: no limit).
pub fn fits(props: &BasicProperties, frame_max: u32) -> bool {
    frame_max == 0
        || header_frame_bytes(props) + SPARE <= usize::try_from(frame_max).unwrap_or(usize::MAX)
}

/// `props` made to fit a frame of `frame_max` bytes: unchanged when they fit;
/// else without the headers §4 does not define (neither the transport's own nor
/// `catalog`'s); else also without the largest
/// of the others, except those named in `keep` (the copy's own bookkeeping).
/// Whatever was left out is named in `x-jirasync-dropped-headers`, after the
/// names an earlier copy dropped. `Err` with the frame's size when even that
/// does not fit (a `frame_max` too small for the bookkeeping itself).
pub fn fit(
    props: BasicProperties,
    frame_max: u32,
    catalog: &Catalog,
    keep: &[&str],
) -> Result<Fitted, usize> {
    if fits(&props, frame_max) {
        return Ok(Fitted {
            properties: props,
            dropped: Vec::new(),
            dropped_defined: false,
        });
    }
    let earlier = message::header_str(&props, DROPPED_HEADERS);
    let (mut kept, undefined): (Vec<_>, Vec<_>) = props
        .headers()
        .as_ref()
        .map(|headers| headers.inner().clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, _)| name.as_str() != DROPPED_HEADERS)
        .partition(|(name, _)| catalog.defines_header(name.as_str()));
    // Sorted by name: the table is a sorted map.
    let mut dropped: Vec<String> = undefined
        .into_iter()
        .map(|(name, _)| name.as_str().to_owned())
        .collect();
    let mut dropped_defined = false;
    loop {
        let mut headers = FieldTable::default();
        for (name, value) in &kept {
            headers.insert(name.clone(), value.clone());
        }
        headers.insert(
            DROPPED_HEADERS.into(),
            message::long_string(&named(earlier.as_deref(), &dropped)),
        );
        let properties = props.clone().with_headers(headers);
        if fits(&properties, frame_max) {
            return Ok(Fitted {
                properties,
                dropped,
                dropped_defined,
            });
        }
        // The largest header the copy did not set itself.
        let largest = kept
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| !keep.contains(&name.as_str()))
            .max_by_key(|(_, (name, value))| name.as_str().len() + encoded_len(value))
            .map(|(at, _)| at);
        match largest {
            Some(at) => {
                let (name, _) = kept.remove(at);
                dropped.push(name.as_str().to_owned());
                dropped_defined = true;
            }
            None => return Err(header_frame_bytes(&properties)),
        }
    }
}

fn encoded_len(value: &AMQPValue) -> usize {
    let mut one = FieldTable::default();
    one.insert("v".into(), value.clone());
    header_frame_bytes(&BasicProperties::default().with_headers(one))
}

/// `earlier, a, b, …`, at most [`MAX_DROPPED_LIST`] bytes: the names that do
/// not fit are counted (`… and 3 more`).
fn named(earlier: Option<&str>, dropped: &[String]) -> String {
    let mut list = earlier.unwrap_or_default().to_owned();
    for (n, name) in dropped.iter().enumerate() {
        let separator = if list.is_empty() { "" } else { ", " };
        if list.len() + separator.len() + name.len() > MAX_DROPPED_LIST {
            list.push_str(&format!(" … and {} more", dropped.len() - n));
            break;
        }
        list.push_str(separator);
        list.push_str(name);
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::message::{ATTEMPTS, ERROR, header_str, long_string};

    /// A header the provider defines.
    const TOKEN: &str = "token";
    static CATALOG: Catalog = Catalog {
        webhooks: &[],
        jobs: &[],
        outbound: &[],
        known_types: &[],
        headers: &[TOKEN],
    };

    const FRAME: u32 = 131_072;

    fn with(headers: &[(&str, AMQPValue)]) -> BasicProperties {
        let (_, props) = message::job_properties("p.job");
        message::with_headers(&props, headers)
    }

    fn big(len: usize) -> AMQPValue {
        long_string(&"x".repeat(len))
    }

    fn has(props: &BasicProperties, name: &str) -> bool {
        props
            .headers()
            .as_ref()
            .is_some_and(|h| h.contains_key(name))
    }

    #[test]
    fn properties_that_fit_are_left_alone() {
        let props = with(&[("x-custom", big(1000)), (TOKEN, long_string("t"))]);
        let fitted = fit(props.clone(), FRAME, &CATALOG, &[]).expect("fits");
        assert_eq!(fitted.properties, props);
        assert!(fitted.dropped.is_empty() && !fitted.dropped_defined);
    }

    #[test]
    fn headers_that_section_4_does_not_define_go_first_and_are_named() {
        let props = with(&[
            ("x-big", big(131_000)),
            ("x-small", big(10)),
            (TOKEN, long_string("t")),
            (ATTEMPTS, AMQPValue::LongLongInt(2)),
        ]);
        let fitted = fit(props, FRAME, &CATALOG, &[ATTEMPTS]).expect("fits");
        assert!(fits(&fitted.properties, FRAME));
        assert_eq!(fitted.dropped, ["x-big", "x-small"]);
        assert!(!fitted.dropped_defined);
        let props = &fitted.properties;
        assert_eq!(
            header_str(props, DROPPED_HEADERS).as_deref(),
            Some("x-big, x-small")
        );
        assert!(has(props, TOKEN) && has(props, ATTEMPTS));
        assert!(!has(props, "x-big") && !has(props, "x-small"));
    }

    #[test]
    fn a_giant_defined_header_goes_too_but_never_the_copys_own() {
        let props = with(&[
            (TOKEN, big(131_000)),
            (ERROR, long_string("why")),
            ("x-other", big(5)),
        ]);
        let fitted = fit(props, FRAME, &CATALOG, &[ERROR]).expect("fits");
        assert!(fitted.dropped_defined);
        assert_eq!(fitted.dropped, ["x-other", TOKEN]);
        assert_eq!(
            header_str(&fitted.properties, ERROR).as_deref(),
            Some("why")
        );
        assert_eq!(
            header_str(&fitted.properties, DROPPED_HEADERS).as_deref(),
            Some("x-other, token")
        );
    }

    #[test]
    fn names_dropped_by_an_earlier_copy_are_kept_in_front() {
        let props = with(&[
            (DROPPED_HEADERS, long_string("x-first")),
            ("x-late", big(131_000)),
        ]);
        let fitted = fit(props, FRAME, &CATALOG, &[]).expect("fits");
        assert_eq!(
            header_str(&fitted.properties, DROPPED_HEADERS).as_deref(),
            Some("x-first, x-late")
        );
    }

    #[test]
    fn the_list_of_dropped_names_is_bounded() {
        let many: Vec<(String, AMQPValue)> = (0..400)
            .map(|n| (format!("x-header-number-{n:04}"), big(400)))
            .collect();
        let headers: Vec<(&str, AMQPValue)> =
            many.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let fitted = fit(with(&headers), FRAME, &CATALOG, &[]).expect("fits");
        let list = header_str(&fitted.properties, DROPPED_HEADERS).expect("list");
        assert!(list.len() <= MAX_DROPPED_LIST + 20, "{}", list.len());
        assert!(list.ends_with("more"), "{list}");
        assert_eq!(fitted.dropped.len(), 400);
    }

    #[test]
    fn a_frame_too_small_for_the_bookkeeping_is_an_error() {
        let props = with(&[(ERROR, big(5000))]);
        assert!(fit(props, 4096, &CATALOG, &[ERROR]).is_err());
    }
}
