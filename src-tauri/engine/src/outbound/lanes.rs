//! Dealing a burst over several connections at once (the outbound queue and the backup MX's
//! release runs).

/// Splits `items` over at most `n` lanes, dealt in turn so that each lane gets old and new
/// mail alike; always at least one lane.
pub fn lanes<T>(items: Vec<T>, n: usize) -> Vec<Vec<T>> {
    let n = n.clamp(1, items.len().max(1));
    let mut lanes: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        lanes[i % n].push(item);
    }
    lanes
}
