"""The web chat: the Gradio page (page), its example questions (examples), the JSON routes (api) and the
server's edge (edge). A layer over `qa.QA`, like the CLI; the serving floor never imports it."""
