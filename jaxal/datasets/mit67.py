"""MIT-67 (Quattoni and Torralba, CVPR 2009): the facts of its files and classes.

Shared by the catalog (error messages, class names) and the TFDS builder that
prepares it (`builders.JaxalMit67`); TensorFlow-free, so the catalog can import it.
"""

FILES = ("indoorCVPR_09.tar", "TrainImages.txt", "TestImages.txt")
INSTRUCTIONS = f"""\
MIT-67 (Quattoni and Torralba, CVPR 2009) is not downloadable by TFDS. Get
{FILES[0]} (the images) and the official split lists {FILES[1]} and
{FILES[2]} from https://web.mit.edu/torralba/www/indoor.html and put the
three files, unchanged, in the manual directory
(DATA_DIR/downloads/manual/ unless --manual_dir says otherwise), then run
with --download once to prepare it (no network needed for this step)."""

CLASSES = (  # the folder names in the archive, sorted: TFDS label i is CLASSES[i]
    "airport_inside", "artstudio", "auditorium", "bakery", "bar", "bathroom",
    "bedroom", "bookstore", "bowling", "buffet", "casino", "children_room",
    "church_inside", "classroom", "cloister", "closet", "clothingstore",
    "computerroom", "concert_hall", "corridor", "deli", "dentaloffice",
    "dining_room", "elevator", "fastfood_restaurant", "florist", "gameroom",
    "garage", "greenhouse", "grocerystore", "gym", "hairsalon", "hospitalroom",
    "inside_bus", "inside_subway", "jewelleryshop", "kindergarden", "kitchen",
    "laboratorywet", "laundromat", "library", "livingroom", "lobby", "locker_room",
    "mall", "meeting_room", "movietheater", "museum", "nursery", "office",
    "operating_room", "pantry", "poolinside", "prisoncell", "restaurant",
    "restaurant_kitchen", "shoeshop", "stairscase", "studiomusic", "subway",
    "toystore", "trainstation", "tv_studio", "videostore", "waitingroom",
    "warehouse", "winecellar")
