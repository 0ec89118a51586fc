"""A/B tests and what answers sold: the split of traffic (``experiment``), a store per
arm (``arms``), recommendation ids and credit (``attribution``), the sales report
(``sales``)."""
