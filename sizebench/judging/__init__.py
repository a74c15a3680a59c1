"""Judging free-form answers: which pairs to show (pairs), the blind side-by-side page (server, page.html,
page.js), an LLM judge in its own worker process (llm_judge, judge_worker). Votes are VoteRecords in
the run store; sizebench.analysis.preference turns them into the preference verdict."""
