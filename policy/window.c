#include "policy.h"

static void
window_roll(struct window_counter *w, uint64_t bucket)
{
	if (bucket == w->bucket)
		return;
	w->prev = bucket == w->bucket + 1 ? w->cur : 0;
	w->cur = 0;
	w->bucket = bucket;
}

uint32_t
window_estimate(const struct window_counter *w, uint64_t now_ms,
    uint32_t window_s)
{
	uint64_t win = (uint64_t)window_s * 1000;
	uint64_t bucket = now_ms / win;
	uint64_t into = now_ms % win;
	uint32_t cur, prev;

	if (bucket == w->bucket) {
		cur = w->cur;
		prev = w->prev;
	} else if (bucket == w->bucket + 1) {
		cur = 0;
		prev = w->cur;
	} else
		return 0;
	/* the part of the previous bucket still inside the window, rounded up
	 */
	return cur + (uint32_t)((prev * (win - into) + win - 1) / win);
}

void
window_add(struct window_counter *w, uint64_t now_ms, uint32_t window_s,
    uint32_t n)
{
	window_roll(w, now_ms / ((uint64_t)window_s * 1000));
	w->cur = w->cur + n < w->cur ? UINT32_MAX : w->cur + n;
}
