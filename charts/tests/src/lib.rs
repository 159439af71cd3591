//! The Helm chart's checks live in `tests/chart.rs` (`cargo test -p prismicx-chart-tests`); this
//! crate has no library code. It sits beside the chart, not inside `charts/prismicx/`, so
//! `helm package` and `helm lint` never see it.
