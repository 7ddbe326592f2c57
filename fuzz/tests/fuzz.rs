//! The bounded run of every fuzz target (`kafdo_fuzz::targets::TARGETS`), part of `make test`:
//! a few thousand cases each, about a minute in all on two cores in debug. `PROPTEST_CASES`
//! sets the count of every target; `make fuzz` is the long run.

fn bounded(name: &str) {
    if let Err(failure) = kafdo_fuzz::targets::bounded(name) {
        panic!("fuzz target {name}: {failure}");
    }
}

#[test]
fn route() {
    bounded("route");
}

#[test]
fn body_bytes() {
    bounded("body-bytes");
}

#[test]
fn body_tree() {
    bounded("body-tree");
}

#[test]
fn body_mutation() {
    bounded("body-mutation");
}

#[test]
fn query() {
    bounded("query");
}

#[test]
fn request() {
    bounded("request");
}

#[test]
fn every_target_has_a_test() {
    let names: Vec<&str> = kafdo_fuzz::targets::TARGETS
        .iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        [
            "route",
            "body-bytes",
            "body-tree",
            "body-mutation",
            "query",
            "request"
        ]
    );
}
