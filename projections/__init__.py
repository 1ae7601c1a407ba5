"""Read models built from the event log (balances, journal, hierarchy, reports).

Each view lives in its own module with its handlers and queries; none exists
yet. Projections depend on `domain` only, never on `application` or `interface`.
"""
