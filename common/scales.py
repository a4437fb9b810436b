"""The scales of a term's inputs: French averages out of 20, the model card's ratings (behaviour,
participation, work) out of 10. The database constraints, the grade parsing and the prompt's
checks all read them from here."""

AVERAGE_MAX = 20
RATING_MAX = 10
