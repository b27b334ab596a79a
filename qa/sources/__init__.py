"""Where articles come from; every source ends as the same Article, stored as a file in the articles folder.

files.py   the articles folder (.txt, .md, .html; HTML main text + metadata by trafilatura)
web.py     a URL fetched with limits, saved as a page in the articles folder
feeds.py   RSS/Atom feeds (feedparser); remembers what it has seen in a JSON file
watch.py   watchfiles on the articles folder -> a debounced callback (QA.update)
background.py  the loop thread both of those run in

A source never touches the index: the pipeline indexes what the folder holds.
"""
