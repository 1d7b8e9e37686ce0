//! Order-preserving data parallelism over slices, with scoped threads.
//!
//! The slice is cut into one contiguous chunk per available core; results come back in
//! chunk order, so the output never depends on the number of threads. Small inputs
//! run on the calling thread.

/// Below this many items, threads cost more than they save.
const MIN_PARALLEL_ITEMS: usize = 256;

fn workers(items: usize) -> usize {
    if items < MIN_PARALLEL_ITEMS {
        return 1;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

/// `f` over contiguous chunks of `items`, results in order.
pub fn map_chunks<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> R + Sync) -> Vec<R> {
    let n = workers(items.len());
    if n == 1 {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(size)
            .map(|chunk| scope.spawn(|| f(chunk)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// `f` over contiguous mutable chunks of `items`, results in order.
pub fn map_chunks_mut<T: Send, R: Send>(
    items: &mut [T],
    f: impl Fn(&mut [T]) -> R + Sync,
) -> Vec<R> {
    let n = workers(items.len());
    if n == 1 {
        return vec![f(items)];
    }
    let size = items.len().div_ceil(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks_mut(size)
            .map(|chunk| {
                let f = &f;
                scope.spawn(move || f(chunk))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_their_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let sums: Vec<u32> =
            super::map_chunks(&items, |c| c.iter().map(|x| x * 2).collect::<Vec<_>>())
                .into_iter()
                .flatten()
                .collect();
        assert_eq!(sums, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let mut items = items;
        super::map_chunks_mut(&mut items, |c| c.iter_mut().for_each(|x| *x += 1));
        assert_eq!(items[9_999], 10_000);
    }
}
