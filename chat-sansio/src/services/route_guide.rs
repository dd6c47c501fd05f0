//! The standard `routeguide.RouteGuide` service (seed 004 shows RouteChat).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

use bytes::Bytes;
use chat_proto::routeguide::{paths, Feature, Point, Rectangle, RouteNote, RouteSummary};
use prost::Message as _;

use crate::server::{CallId, CloseReason, Handler, Outbox, Request};
use crate::status::{malformed, unimplemented, Code, Status};
use crate::time::Time;

/// Notes kept per location; older ones are dropped.
pub const MAX_NOTES_PER_LOCATION: usize = 1000;
/// Locations with notes kept; notes at a new location past this are refused
/// with RESOURCE_EXHAUSTED.
pub const MAX_NOTE_LOCATIONS: usize = 100_000;

/// Settings of [`RouteGuide`].
#[derive(Clone, Debug)]
pub struct RouteGuideConfig {
    /// The known features (named points).
    pub features: Vec<Feature>,
}

impl Default for RouteGuideConfig {
    /// A few features of the gRPC examples' route_guide_db.json.
    fn default() -> RouteGuideConfig {
        let f = |name: &str, latitude, longitude| Feature {
            name: name.into(),
            location: Some(Point {
                latitude,
                longitude,
            }),
        };
        RouteGuideConfig {
            features: vec![
                f(
                    "Patriots Path, Mendham, NJ 07945, USA",
                    407_838_351,
                    -746_143_763,
                ),
                f(
                    "101 New Jersey 10, Whippany, NJ 07981, USA",
                    408_122_808,
                    -743_999_179,
                ),
                f("U.S. 6, Shohola, PA 18458, USA", 413_628_156, -749_015_468),
                f(
                    "5 Conners Road, Kingston, NY 12401, USA",
                    419_999_544,
                    -740_371_136,
                ),
                f(
                    "Mid Hudson Psychiatric Center, New Hampton, NY 10958, USA",
                    414_008_389,
                    -743_951_297,
                ),
            ],
        }
    }
}

#[derive(Debug)]
enum Call {
    GetFeature(Option<Point>),
    ListFeatures(Option<Rectangle>),
    RecordRoute {
        points: i32,
        features: i32,
        metres: f64,
        last: Option<Point>,
        start: Time,
    },
    RouteChat,
}

/// The route guide: features, routes and notes.
#[derive(Debug, Default)]
pub struct RouteGuide {
    features: Vec<Feature>,
    /// RouteChat notes by location, shared by every call, as in the seed.
    notes: HashMap<(i32, i32), VecDeque<RouteNote>>,
    calls: HashMap<CallId, Call>,
}

impl RouteGuide {
    /// A route guide knowing `config.features`.
    pub fn new(config: RouteGuideConfig) -> RouteGuide {
        RouteGuide {
            features: config.features,
            ..RouteGuide::default()
        }
    }

    fn feature_at(&self, p: &Point) -> Option<&Feature> {
        self.features
            .iter()
            .find(|f| f.location.as_ref() == Some(p) && !f.name.is_empty())
    }

    /// Stores a request message of a method taking exactly one.
    fn one<M: prost::Message + Default>(
        slot: &mut Option<M>,
        msg: Bytes,
        what: &str,
    ) -> Result<(), Status> {
        if slot.is_some() {
            return Err(Status::new(Code::Internal, "more than one request message"));
        }
        *slot = Some(M::decode(msg).map_err(|e| malformed(what, &e))?);
        Ok(())
    }

    fn note(
        &mut self,
        call: CallId,
        msg: Bytes,
        out: &mut Outbox<'_, Infallible>,
    ) -> Result<(), Status> {
        let note = RouteNote::decode(msg).map_err(|e| malformed("RouteNote", &e))?;
        let at = note.location.unwrap_or_default();
        let key = (at.latitude, at.longitude);
        if !self.notes.contains_key(&key) && self.notes.len() >= MAX_NOTE_LOCATIONS {
            return Err(Status::new(
                Code::ResourceExhausted,
                "too many note locations",
            ));
        }
        let notes = self.notes.entry(key).or_default();
        if notes.len() == MAX_NOTES_PER_LOCATION {
            notes.pop_front();
        }
        notes.push_back(note);
        for n in notes.iter() {
            out.send_message(call, n);
        }
        Ok(())
    }

    fn answer(
        &self,
        now: Time,
        call: Call,
        id: CallId,
        out: &mut Outbox<'_, Infallible>,
    ) -> Status {
        let missing = || Status::new(Code::Internal, "missing request message");
        match call {
            Call::GetFeature(None) | Call::ListFeatures(None) => return missing(),
            Call::GetFeature(Some(p)) => {
                let found = self.feature_at(&p).cloned().unwrap_or(Feature {
                    name: String::new(),
                    location: Some(p),
                });
                out.send_message(id, &found);
            }
            Call::ListFeatures(Some(rect)) => {
                for f in &self.features {
                    if f.location.as_ref().is_some_and(|p| in_range(p, &rect)) {
                        out.send_message(id, f);
                    }
                }
            }
            Call::RecordRoute {
                points,
                features,
                metres,
                start,
                ..
            } => {
                let summary = RouteSummary {
                    point_count: points,
                    feature_count: features,
                    distance: metres.min(f64::from(i32::MAX)) as i32,
                    elapsed_time: i32::try_from(now.saturating_since(start).as_secs())
                        .unwrap_or(i32::MAX),
                };
                out.send_message(id, &summary);
            }
            Call::RouteChat => {}
        }
        Status::ok()
    }
}

impl Handler for RouteGuide {
    type Event = Infallible;
    type Input = Infallible;

    fn services(&self) -> Vec<String> {
        vec!["routeguide.RouteGuide".to_owned()]
    }

    fn open(
        &mut self,
        now: Time,
        req: &Request<'_>,
        _out: &mut Outbox<'_, Infallible>,
    ) -> Result<(), Status> {
        let call = match req.path {
            paths::GET_FEATURE => Call::GetFeature(None),
            paths::LIST_FEATURES => Call::ListFeatures(None),
            paths::RECORD_ROUTE => Call::RecordRoute {
                points: 0,
                features: 0,
                metres: 0.0,
                last: None,
                start: now,
            },
            paths::ROUTE_CHAT => Call::RouteChat,
            other => return Err(unimplemented(other)),
        };
        self.calls.insert(req.call, call);
        Ok(())
    }

    fn message(&mut self, _now: Time, id: CallId, msg: Bytes, out: &mut Outbox<'_, Infallible>) {
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        let result = match &mut call {
            Call::GetFeature(slot) => Self::one(slot, msg, "Point"),
            Call::ListFeatures(slot) => Self::one(slot, msg, "Rectangle"),
            Call::RecordRoute {
                points,
                features,
                metres,
                last,
                ..
            } => match Point::decode(msg) {
                Ok(p) => {
                    *points = points.saturating_add(1);
                    if self.feature_at(&p).is_some() {
                        *features = features.saturating_add(1);
                    }
                    if let Some(prev) = last {
                        *metres += distance(prev, &p);
                    }
                    *last = Some(p);
                    Ok(())
                }
                Err(e) => Err(malformed("Point", &e)),
            },
            Call::RouteChat => self.note(id, msg, out),
        };
        match result {
            Ok(()) => {
                self.calls.insert(id, call);
            }
            Err(status) => {
                out.finish(id, status);
            }
        }
    }

    fn half_close(&mut self, now: Time, id: CallId, out: &mut Outbox<'_, Infallible>) {
        if let Some(call) = self.calls.remove(&id) {
            let status = self.answer(now, call, id, out);
            out.finish(id, status);
        }
    }

    fn closed(
        &mut self,
        _now: Time,
        id: CallId,
        _reason: CloseReason,
        _out: &mut Outbox<'_, Infallible>,
    ) {
        self.calls.remove(&id);
    }
}

/// Whether `p` lies in the rectangle, edges included.
fn in_range(p: &Point, rect: &Rectangle) -> bool {
    let (lo, hi) = (rect.lo.unwrap_or_default(), rect.hi.unwrap_or_default());
    let (left, right) = (
        lo.longitude.min(hi.longitude),
        lo.longitude.max(hi.longitude),
    );
    let (bottom, top) = (lo.latitude.min(hi.latitude), lo.latitude.max(hi.latitude));
    (left..=right).contains(&p.longitude) && (bottom..=top).contains(&p.latitude)
}

/// Great-circle distance in metres between two E7 points (haversine, as the
/// gRPC examples compute it).
fn distance(a: &Point, b: &Point) -> f64 {
    const EARTH_RADIUS_M: f64 = 6_371_000.0;
    let rad = |e7: i32| (f64::from(e7) / 1e7).to_radians();
    let (lat1, lat2) = (rad(a.latitude), rad(b.latitude));
    let (dlat, dlng) = (lat2 - lat1, rad(b.longitude) - rad(a.longitude));
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlng / 2.0).sin().powi(2);
    EARTH_RADIUS_M * 2.0 * h.sqrt().atan2((1.0 - h).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_matches_the_examples_formula() {
        let a = Point {
            latitude: 407_838_351,
            longitude: -746_143_763,
        };
        let b = Point {
            latitude: 408_122_808,
            longitude: -743_999_179,
        };
        let d = distance(&a, &b);
        assert!((18_000.0..18_400.0).contains(&d), "{d}");
        assert_eq!(distance(&a, &a), 0.0);
    }

    #[test]
    fn rectangles_include_their_edges_in_any_corner_order() {
        let r = Rectangle {
            lo: Some(Point {
                latitude: 10,
                longitude: 20,
            }),
            hi: Some(Point {
                latitude: 0,
                longitude: 0,
            }),
        };
        assert!(in_range(
            &Point {
                latitude: 10,
                longitude: 0
            },
            &r
        ));
        assert!(!in_range(
            &Point {
                latitude: 11,
                longitude: 0
            },
            &r
        ));
    }
}
