//! Where the HTTP layer meets the one authorization point (`projections::authorize`): every
//! route declares its [`Operation`] and what its path names ([`On`]) where it is registered
//! (`server::routes`, `console::routes`), in a [`RouteTable`]. The auth middleware looks the
//! matched route up, resolves the token to a [`Caller`] and asks `authorize`; nothing here
//! matches path strings. A route registered without a declaration fails to build the router,
//! and one the table does not know (the 404 and 405 fallbacks) needs a valid token of any scope.

use std::collections::HashMap;

use axum::http::Method;
use events::TicketId;
use projections::{Ledger, Operation, Target};
use service::tokens::Caller;
use utoipa_axum::router::UtoipaMethodRouter;

use crate::error::AppError;

/// What a route's path names: the target `authorize` is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Nothing in particular: the whole ledger.
    Ledger,
    /// The ticket `{id}`.
    Ticket,
    /// The runtime `{id}`.
    Runtime,
    /// The pool `{name}`.
    Pool,
    /// The subscription `{name}`.
    Subscription,
}

/// A route's declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decl {
    pub op: Operation,
    pub on: On,
}

pub fn ledger(op: Operation) -> Decl {
    Decl { op, on: On::Ledger }
}

pub fn ticket(op: Operation) -> Decl {
    Decl { op, on: On::Ticket }
}

pub fn runtime(op: Operation) -> Decl {
    Decl {
        op,
        on: On::Runtime,
    }
}

pub fn pool(op: Operation) -> Decl {
    Decl { op, on: On::Pool }
}

pub fn subscription(op: Operation) -> Decl {
    Decl {
        op,
        on: On::Subscription,
    }
}

/// Every route's declaration, by method and path template (as `MatchedPath` names it).
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    /// Path template → its methods' declarations (looked up by `&str`, no allocation).
    routes: HashMap<String, Vec<(Method, Decl)>>,
    pending: Vec<(Method, Decl)>,
}

impl RouteTable {
    pub fn get(&mut self, d: Decl) -> &mut RouteTable {
        self.pending.push((Method::GET, d));
        self
    }

    pub fn post(&mut self, d: Decl) -> &mut RouteTable {
        self.pending.push((Method::POST, d));
        self
    }

    pub fn patch(&mut self, d: Decl) -> &mut RouteTable {
        self.pending.push((Method::PATCH, d));
        self
    }

    pub fn delete(&mut self, d: Decl) -> &mut RouteTable {
        self.pending.push((Method::DELETE, d));
        self
    }

    /// Records the pending declarations for a documented route, which must have exactly the
    /// declared methods (a missing or extra one is a programming error: the router is not
    /// built).
    pub fn on<S>(&mut self, route: UtoipaMethodRouter<S>) -> UtoipaMethodRouter<S> {
        let pending = std::mem::take(&mut self.pending);
        for (path, item) in &route.1.paths {
            let documented = [
                (Method::GET, item.get.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::DELETE, item.delete.is_some()),
            ];
            for (method, present) in documented {
                let declared = pending.iter().find(|(m, _)| *m == method);
                match (present, declared) {
                    (true, Some((_, d))) => self.insert(method, path, *d),
                    (true, None) => panic!("{method} {path} is registered without an operation"),
                    (false, Some(_)) => panic!("{method} {path} is declared but not registered"),
                    (false, None) => {}
                }
            }
        }
        route
    }

    /// Records the pending declarations for an undocumented route (the console's pages).
    /// Returns the path, so the declaration sits in the registration:
    /// `.route(t.get(..).at("/"), get(board))`.
    pub fn at<'p>(&mut self, path: &'p str) -> &'p str {
        for (method, d) in std::mem::take(&mut self.pending) {
            self.insert(method, path, d);
        }
        path
    }

    fn insert(&mut self, method: Method, path: &str, d: Decl) {
        let methods = self.routes.entry(path.to_owned()).or_default();
        assert!(
            methods.iter().all(|(m, _)| *m != method),
            "{method} {path} is declared twice"
        );
        methods.push((method, d));
    }

    /// A route's declaration; HEAD is a GET.
    pub fn lookup(&self, method: &Method, path: &str) -> Option<Decl> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.routes
            .get(path)?
            .iter()
            .find(|(m, _)| m == method)
            .map(|(_, d)| *d)
    }

    /// Every declared route: (method, path, declaration).
    pub fn iter(&self) -> impl Iterator<Item = (&Method, &str, &Decl)> {
        self.routes
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |(m, d)| (m, p.as_str(), d)))
    }

    /// Merges another table (the console's) into this one.
    pub fn merge(&mut self, other: RouteTable) {
        for (path, methods) in other.routes {
            for (method, d) in methods {
                self.insert(method, &path, d);
            }
        }
    }
}

/// The target a route's path names, if it names a valid one.
pub enum Named {
    Ledger,
    Ticket(TicketId),
    Runtime(String),
    Pool(String),
    Subscription(String),
}

impl Named {
    pub fn of(on: On, param: Option<&str>) -> Named {
        match (on, param) {
            (On::Ticket, Some(id)) => TicketId::parse(id).map_or(Named::Ledger, Named::Ticket),
            (On::Runtime, Some(id)) => Named::Runtime(id.to_owned()),
            (On::Pool, Some(name)) => Named::Pool(name.to_owned()),
            (On::Subscription, Some(name)) => Named::Subscription(name.to_owned()),
            _ => Named::Ledger,
        }
    }

    pub fn target(&self) -> Option<Target<'_>> {
        match self {
            Named::Ledger => None,
            Named::Ticket(t) => Some(Target::Ticket(t)),
            Named::Runtime(r) => Some(Target::Runtime(r)),
            Named::Pool(p) => Some(Target::Pool(p)),
            Named::Subscription(s) => Some(Target::Subscription(s)),
        }
    }
}

/// `authorize` for a caller, answered as the API answers a refusal.
pub fn check(
    ledger: &Ledger,
    caller: &Caller,
    op: Operation,
    target: Option<Target<'_>>,
) -> Result<(), AppError> {
    Ok(projections::authorize(
        ledger,
        &caller.principal(),
        op,
        target,
    )?)
}
