"""The class in a browser: a page per student (terminals on their nodes, a live picture of
their swarm) and the instructor's board, served by swarmlab itself with no internet.

links.py keeps the secret links; room.py says which labs are served; picture.py draws a
swarm; watch.py looks at each lab at most once per period whatever the number of viewers;
terminal.py bridges a browser terminal to SSH; jobs.py runs the instructor's actions;
app.py is the ASGI app; serve.py starts uvicorn.
"""
