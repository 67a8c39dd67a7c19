"""What the account pages say, in English and French.

The English text is the key: pages call ``t("Sign in")`` and get it back in the page's
language. The labels the issue names are part of the interface (docs/account.md lists
them with their French); a test checks that every text the pages use has its French.
"""

from __future__ import annotations

from typing import Any

LANGUAGES = ("en", "fr")
LANGUAGE_NAMES = {"en": "English", "fr": "Français"}

FRENCH: dict[str, str] = {
    # the frame of every page
    "xlstock online account": "Compte en ligne xlstock",
    "Signed in as {email}": "Connecté en tant que {email}",
    "Stock levels": "Niveaux de stock",
    "Account profile": "Profil du compte",
    "Services": "Services",
    "API tokens": "Jetons d'API",
    "History": "Historique",
    "Sign out": "Se déconnecter",
    "Language": "Langue",
    "Account pages": "Pages du compte",
    # signing in
    "Sign in": "Se connecter",
    "Email": "E-mail",
    "Password": "Mot de passe",
    "Wrong email or password.": "E-mail ou mot de passe incorrect.",
    "Too many failed sign-ins. Try again in {seconds} seconds.":
        "Trop d'échecs de connexion. Réessayez dans {seconds} secondes.",
    "You are signed out.": "Vous êtes déconnecté.",
    "No account yet? The stock service's operator creates one with "
    "xlstock account add EMAIL, which prints a one-time password for your first sign-in.":
        "Pas encore de compte ? L'administrateur du service de stock en crée un avec "
        "xlstock account add EMAIL, qui affiche un mot de passe à usage unique pour votre "
        "première connexion.",
    # the first password
    "Choose your password": "Choisissez votre mot de passe",
    "You signed in with a one-time password. Choose your own password to go on (at least "
    "{count} characters).":
        "Vous vous êtes connecté avec un mot de passe à usage unique. Choisissez votre "
        "propre mot de passe pour continuer (au moins {count} caractères).",
    "New password": "Nouveau mot de passe",
    "Repeat new password": "Répétez le nouveau mot de passe",
    "Save password": "Enregistrer le mot de passe",
    "The two passwords differ.": "Les deux mots de passe sont différents.",
    "The password needs at least {count} characters.":
        "Le mot de passe doit compter au moins {count} caractères.",
    "The password is too long (at most {count} characters).":
        "Le mot de passe est trop long ({count} caractères au plus).",
    "Choose a password other than the one-time password.":
        "Choisissez un autre mot de passe que le mot de passe à usage unique.",
    "Your password is saved.": "Votre mot de passe est enregistré.",
    # account profile
    "Shop URL": "Adresse de la boutique",
    "Save": "Enregistrer",
    "Your shop's address, as in the Shop URL of your workbook's Settings sheet. Saving it "
    "registers the shop with this stock service; saving another address later moves your "
    "stock to it.":
        "L'adresse de votre boutique, comme dans Shop URL de la feuille Settings de votre "
        "classeur. L'enregistrer inscrit la boutique auprès de ce service de stock ; "
        "enregistrer plus tard une autre adresse y déplace votre stock.",
    "No shop yet: save your shop's URL to register it.":
        "Pas encore de boutique : enregistrez l'adresse de votre boutique pour l'inscrire.",
    "The shop {url} is registered. Next: switch on the automatic stock level update on "
    "the Services page.":
        "La boutique {url} est inscrite. Ensuite : activez la mise à jour automatique des "
        "niveaux de stock sur la page Services.",
    "Your account now holds the shop {url}.": "Votre compte détient maintenant la boutique {url}.",
    "Your stock is now under {url}; the old address is no longer registered.":
        "Votre stock est maintenant sous {url} ; l'ancienne adresse n'est plus inscrite.",
    "Nothing changed.": "Rien n'a changé.",
    "“{url}” is not a web address; write it like https://myshop.example.":
        "« {url} » n'est pas une adresse web ; écrivez-la comme https://maboutique.example.",
    "Another account holds {url}.": "Un autre compte détient {url}.",
    "{url} was registered with xlstock shop add. To claim it, enter in “API token of the "
    "shop” a token that command printed for it (ask the stock service's operator).":
        "{url} a été inscrite avec xlstock shop add. Pour la revendiquer, saisissez dans "
        "« Jeton d'API de la boutique » un jeton que cette commande a affiché pour elle "
        "(demandez-le à l'administrateur du service de stock).",
    "API token of the shop": "Jeton d'API de la boutique",
    "Only to claim a shop the stock service's operator registered with xlstock shop add: "
    "the API token that command printed for it (xlstock shop add URL --new-token prints "
    "another). Leave it empty otherwise.":
        "Seulement pour revendiquer une boutique que l'administrateur du service de stock a "
        "inscrite avec xlstock shop add : le jeton d'API que cette commande a affiché pour "
        "elle (xlstock shop add URL --new-token en affiche un autre). Sinon, laissez-le vide.",
    "{url} is registered already, with stock of its own; your stock cannot move onto it.":
        "{url} est déjà inscrite, avec son propre stock ; votre stock ne peut pas s'y "
        "déplacer.",
    # services
    "Automatic stock level update": "Mise à jour automatique des niveaux de stock",
    "While it is on, xlstock's Sync and Publish and the shop's orders read and change the "
    "levels here. While it is off, the stock service refuses them.":
        "Tant qu'elle est activée, Sync et Publish d'xlstock et les commandes de la boutique "
        "lisent et modifient les niveaux ici. Tant qu'elle est désactivée, le service de "
        "stock les refuse.",
    "Automatic stock level update is on.":
        "La mise à jour automatique des niveaux de stock est activée.",
    "Automatic stock level update is off: Sync, Publish and orders are refused.":
        "La mise à jour automatique des niveaux de stock est désactivée : Sync, Publish et "
        "les commandes sont refusés.",
    "Low stock at": "Stock bas à",
    "Rows at or below this level are marked on the Stock levels page.":
        "Les lignes à ce niveau ou en dessous sont signalées sur la page Niveaux de stock.",
    "Give a whole number from 0 to 1,000,000,000.":
        "Indiquez un nombre entier de 0 à 1 000 000 000.",
    "Saved.": "Enregistré.",
    "Switch it on on the Services page.": "Activez-la sur la page Services.",
    # API tokens
    "Create token": "Créer un jeton",
    "Your new token": "Votre nouveau jeton",
    "This token is shown only once: copy it now. Give it to xlstock as XLSTOCK_TOKEN or "
    "in the system keyring.":
        "Ce jeton n'est affiché qu'une fois : copiez-le maintenant. Donnez-le à xlstock "
        "dans XLSTOCK_TOKEN ou dans le trousseau du système.",
    "A token lets a program (xlstock, your shop) read and change this shop's stock levels. "
    "Revoke a token you no longer use, or one that may have leaked.":
        "Un jeton permet à un programme (xlstock, votre boutique) de lire et modifier les "
        "niveaux de stock de cette boutique. Révoquez un jeton que vous n'utilisez plus, ou "
        "qui a pu fuiter.",
    "Token": "Jeton",
    "Created": "Créé",
    "Last used": "Dernière utilisation",
    "Revoked": "Révoqué",
    "Revoke": "Révoquer",
    "never": "jamais",
    "No token yet.": "Pas encore de jeton.",
    "Revoked tokens": "Jetons révoqués",
    "The token is revoked: the stock service refuses it from now on.":
        "Le jeton est révoqué : le service de stock le refuse désormais.",
    "Last used: to the minute.": "Dernière utilisation : à la minute près.",
    # stock levels
    "Search": "Rechercher",
    "SKU": "Référence",
    "Product": "Produit",
    "Variant": "Variante",
    "Level": "Niveau",
    "Low stock": "Stock bas",
    "Rows {first}–{last} of {total}": "Lignes {first} à {last} sur {total}",
    "No product matches “{search}”.": "Aucun produit ne correspond à « {search} ».",
    "No products yet: Publish from xlstock, or load a catalogue with xlstock shop add.":
        "Pas encore de produit : publiez depuis xlstock, ou chargez un catalogue avec "
        "xlstock shop add.",
    "First": "Début",
    "Previous": "Précédents",
    "Next": "Suivants",
    "Last": "Fin",
    "Rows at {count} or below are marked Low stock.":
        "Les lignes à {count} ou moins sont signalées Stock bas.",
    "Register your shop's URL first, on the Account profile page.":
        "Inscrivez d'abord l'adresse de votre boutique, sur la page Profil du compte.",
    "Show all": "Tout afficher",
    # history
    "Publishes and orders, newest first, with the levels each one changed.":
        "Publications et commandes, les plus récentes d'abord, avec les niveaux que chacune "
        "a modifiés.",
    "When": "Quand",
    "What": "Quoi",
    "Reference": "Référence",
    "Levels changed": "Niveaux modifiés",
    "Publish": "Publication",
    "Order": "Commande",
    "Catalogue": "Catalogue",
    "new": "nouveau",
    "… and {count} more": "… et {count} de plus",
    "Older": "Plus anciens",
    "Newest": "Plus récents",
    "Nothing yet: publishes and orders appear here.":
        "Rien pour l'instant : les publications et les commandes s'affichent ici.",
    # undoing a publish
    "Undo": "Annuler",
    "A publish typed by mistake can be undone (the last {count}): the sales made since "
    "stay sold.":
        "Une publication faite par erreur peut être annulée (les {count} dernières) : les "
        "ventes faites depuis restent vendues.",
    "Undone on {when}": "Annulée le {when}",
    "Undo of publish": "Annulation de la publication",
    "Undo a publish": "Annuler une publication",
    "Each level this publish changed moves back by what it changed, from the level it has "
    "now: the sales made since stay sold. Nothing is changed until you confirm.":
        "Chaque niveau que cette publication a modifié revient en arrière d'autant, à "
        "partir du niveau actuel : les ventes faites depuis restent vendues. Rien n'est "
        "modifié avant votre confirmation.",
    "Level now": "Niveau actuel",
    "Change": "Variation",
    "Level after": "Niveau après",
    "Level before": "Niveau avant",
    "Left as it is": "Laissée telle quelle",
    "no longer in the shop": "n'est plus dans la boutique",
    "would go below zero": "passerait sous zéro",
    "Undo the rows that can be undone ({count}) and leave the rows marked as they are":
        "Annuler les lignes qui peuvent l'être ({count}) et laisser les lignes signalées "
        "telles quelles",
    "Confirm the undo": "Confirmer l'annulation",
    "Back to the History": "Retour à l'historique",
    "Publish undone": "Publication annulée",
    "The publish {key} is undone: {count} levels moved back. The undo is in the History.":
        "La publication {key} est annulée : {count} niveaux sont revenus en arrière. "
        "L'annulation figure dans l'historique.",
    "This publish was already undone on {when}.":
        "Cette publication a déjà été annulée le {when}.",
    "Only the last {count} publishes can be undone here; use xlstock undo for an older one.":
        "Seules les {count} dernières publications peuvent être annulées ici ; pour une plus "
        "ancienne, utilisez xlstock undo.",
    "No row of this publish can be undone: each would leave a level below zero, or its "
    "product is no longer in the shop. Nothing was changed.":
        "Aucune ligne de cette publication ne peut être annulée : chacune laisserait un "
        "niveau sous zéro, ou son produit n'est plus dans la boutique. Rien n'a été modifié.",
    "Some rows would go below zero: tick the box to undo the other rows and leave these as "
    "they are.":
        "Certaines lignes passeraient sous zéro : cochez la case pour annuler les autres "
        "lignes et laisser celles-ci telles quelles.",
    "This publish cannot be undone: {reason}": "Cette publication ne peut pas être annulée : "
                                              "{reason}",
    # errors
    "The form could not be checked: its security token is missing or out of date. Go "
    "back, reload the page and try again.":
        "Le formulaire n'a pas pu être vérifié : son jeton de sécurité manque ou est périmé. "
        "Revenez en arrière, rechargez la page et réessayez.",
    "This form needs cookies: allow cookies for this site, reload the page and try again.":
        "Ce formulaire a besoin des cookies : autorisez les cookies pour ce site, rechargez "
        "la page et réessayez.",
    "There is no such page in your account.": "Cette page n'existe pas dans votre compte.",
    "The form is too large.": "Le formulaire est trop grand.",
    "This page does not take that request.": "Cette page n'accepte pas cette requête.",
    "The stock service failed on this page; nothing was changed. Try again.":
        "Le service de stock a échoué sur cette page ; rien n'a été modifié. Réessayez.",
    "Page not found": "Page introuvable",
    "Request refused": "Requête refusée",
    "Something went wrong": "Une erreur s'est produite",
    "Nothing could be saved": "Rien n'a pu être enregistré",
    "The stock service cannot save anything right now: its storage is full. Nothing was "
    "changed. Try again in a few minutes; if it persists, tell the stock service's "
    "operator.":
        "Le service de stock ne peut rien enregistrer pour le moment : son stockage est "
        "plein. Rien n'a été modifié. Réessayez dans quelques minutes ; si cela persiste, "
        "prévenez l'administrateur du service de stock.",
    "Back to your account": "Retour à votre compte",
    # low stock e-mails: the Services page
    "Low stock e-mails": "E-mails de stock bas",
    "When an order or a publish takes a product to or below its threshold (the one your "
    "workbook published for it, else Low stock at), {email} gets an e-mail; crossings "
    "close together come in one digest.":
        "Quand une commande ou une publication fait passer un produit à son seuil ou en "
        "dessous (celui que votre classeur a publié pour lui, sinon Stock bas à), {email} "
        "reçoit un e-mail ; les passages proches arrivent dans un même récapitulatif.",
    "This stock service sends no e-mail: its operator has not given it an SMTP server "
    "(xlstock serve --smtp-host).":
        "Ce service de stock n'envoie aucun e-mail : son administrateur ne lui a pas donné "
        "de serveur SMTP (xlstock serve --smtp-host).",
    # low stock e-mails: the message (xlstock/server/mail.py)
    "Low stock at {shop}: {count} product(s)": "Stock bas sur {shop} : {count} produit(s)",
    "These products of {shop} reached their low stock threshold:":
        "Ces produits de {shop} ont atteint leur seuil de stock bas :",
    "{level} left (threshold {threshold})": "{level} en stock (seuil {threshold})",
    "... and {count} more.": "... et {count} de plus.",
    "Stock levels: {link}": "Niveaux de stock : {link}",
    "You get these e-mails because low stock e-mails are on for {shop}; switch them off "
    "on the Services page: {link}":
        "Vous recevez ces e-mails parce que les e-mails de stock bas sont activés pour "
        "{shop} ; désactivez-les sur la page Services : {link}",
}


def translate(text: str, language: str, **params: Any) -> str:
    """``text`` in ``language`` (English text is the key), with ``params`` filled in."""
    if language == "fr":
        text = FRENCH.get(text, text)
    return text.format(**params) if params else text


def number(value: int, language: str) -> str:
    """``100,000`` in English, ``100 000`` (narrow no-break space) in French."""
    shown = f"{value:,}"
    return shown.replace(",", "\u202f") if language == "fr" else shown
