"""The governance portal: the policy set, who can see what, a request to try, a change to review.

Server-rendered pages for the people who sign a sharing policy off and do not
use a terminal. `engine serve` mounts them under `/portal` over the set it
serves; `engine portal PATH` serves them alone over a folder being drafted.
"""
