"""The policy-test runner behind `engine test`: test files, running cases, reports."""
