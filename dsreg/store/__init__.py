"""The prepared store and what reads it: Arrow splits, the torch Dataset, collate functions, split expressions."""
